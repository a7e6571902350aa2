"""Replies to campaigns: a contact's first message after a campaign wrote to it counts once as `replied`.

The campaign side stamps each recipient as it is sent (`remember_recipient`); the inbound side calls
`note_reply` for every message a contact sends to a number. The mark and the count are one script
(SET NX, then HINCRBY), so two inbound messages racing each other count one reply.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from wa_ray.storage import keys

STAMP_TTL_S = 7 * 24 * 3600  # a reply later than a week after the campaign's message is not its reply
REPLIED_TTL_S = 31 * 24 * 3600

_NOTE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  return 1
end
return 0
"""


class CampaignReplies:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._note = redis.register_script(_NOTE)

    async def remember_recipient(self, ws: str, sid: str, contact: str, campaign: str) -> None:
        await self._redis.set(keys.campaign_contact(ws, sid, contact), campaign, ex=STAMP_TTL_S)

    async def note_reply(self, ws: str, sid: str, contact: str) -> str | None:
        """The campaign this message is the first reply to, or None (no campaign wrote, or counted already)."""
        cid = await self._redis.get(keys.campaign_contact(ws, sid, contact))
        if not cid:
            return None
        counted = await self._note(keys=[keys.campaign_replied(ws, cid, contact), keys.campaign_counts(ws)],
                                   args=[f"{cid}|{sid}|replied", REPLIED_TTL_S])
        return cid if int(counted) else None
