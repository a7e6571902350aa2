"""Hold, place and cancel a campaign's queued WhatsApp Web message: one Lua step each, like storage/messages.py.

A campaign message that is still `queued` may change number: paused (held: it leaves every session queue),
resumed or redistributed (placed on a number: its record names the session and that session's queue gets an
entry), or cancelled (never sent). Only `queued` moves; a `sending` one is its sender's to resolve.

Why a move can never send twice: the record's `session_id` is the only thing a sender trusts. The old
session's queue keeps its stale entry, and its sender drops it (`_ours_to_send`: another session now); a
sender that read the record before the move and was pacing records its intent with a session guard
(MessageStore.transition(session=...)), which fails once the record names another number. So whichever
sender moves the message `queued -> sending` first is the only one that sends it.

To the Cloud API (`to_cloud`): a queued message whose number is lost, when the campaign has a fallback template
and no other number can take its recipient, becomes that template on the Cloud API in the same one step: the
record's provider (meta), session (none), kind and content are replaced, it stays `queued`, and the cloud queue
gets its entry. It is the same message (same id, same Idempotency-Key), so its recipient still gets one: the
old session's stale entry is dropped by its sender (not WhatsApp Web's any more), and the step runs only from
`queued` on WhatsApp Web, so a second run (a crash, a restart) finds it moved and does nothing.

Counts: the same step moves the message's `wa:cmp-n` bucket (storage/tallies.py): `{cid}|{sid}|queued` -1
and the new one +1, where a held message counts under HELD and a cancelled one under CANCELLED (`failed`).
"""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys, tallies
from wa_ray.storage.messages import META, history_entry

HELD = "~held"  # not a session id (ids never start with ~): a held message's bucket in wa:cmp-n
CANCELLED = "~cancelled"
CANCELLED_CODE = "campaign_cancelled"

# Both steps start here: only a `queued` WhatsApp Web message of this campaign moves, and `who` is where it
# is now (its session, or HELD); ARGV[1] is the campaign id, ARGV[2] the expected `who` ('' for any).
_WHO = """
local cur, cmp, sid, prov, held = unpack(redis.call('HMGET', KEYS[1], 'status', 'campaign', 'session_id',
                                                     'provider', 'held'))
if cur ~= 'queued' or cmp ~= ARGV[1] or prov ~= 'webjs' then return 0 end
local who = sid or ''
if held == '1' then who = '""" + HELD + """' end
if ARGV[2] ~= '' and who ~= ARGV[2] then return 0 end
"""

# KEYS: message, history, the destination queue (any key when not placing), campaign counts.
# ARGV: campaign id, expected current number ('' any, HELD), target (a session id, HELD, CANCELLED),
# history entry, message id.
_MOVE = _WHO + """
if who == ARGV[3] then return 0 end
redis.call('HINCRBY', KEYS[4], cmp .. '|' .. who .. '|queued', -1)
if ARGV[3] == '""" + CANCELLED + """' then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'session_id', '', 'held', '', 'owner', '',
             'error', '""" + CANCELLED_CODE + """', 'reason', 'the campaign was cancelled before this message left')
  redis.call('HINCRBY', KEYS[4], cmp .. '|' .. ARGV[3] .. '|failed', 1)
elseif ARGV[3] == '""" + HELD + """' then
  redis.call('HSET', KEYS[1], 'session_id', '', 'held', '1', 'owner', '')
  redis.call('HINCRBY', KEYS[4], cmp .. '|' .. ARGV[3] .. '|queued', 1)
else
  redis.call('HSET', KEYS[1], 'session_id', ARGV[3], 'held', '', 'owner', '')
  redis.call('HINCRBY', KEYS[4], cmp .. '|' .. ARGV[3] .. '|queued', 1)
  redis.call('XADD', KEYS[3], '*', 'm', ARGV[5])
end
redis.call('RPUSH', KEYS[2], ARGV[4])
return 1
"""


# KEYS: message, history, the cloud queue, campaign counts. ARGV: campaign id, expected current number ('' any,
# HELD), the template's content JSON, history entry, message id.
_TO_CLOUD = _WHO + """
redis.call('HINCRBY', KEYS[4], cmp .. '|' .. who .. '|queued', -1)
redis.call('HSET', KEYS[1], 'provider', 'meta', 'session_id', '', 'held', '', 'owner', '', 'wa_key', '',
           'kind', 'template', 'content', ARGV[3], 'text', '', 'campaign_fallback', '1')
redis.call('HINCRBY', KEYS[4], cmp .. '|""" + tallies.CLOUD + """|queued', 1)
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[5])
return 1
"""


class CampaignMoves:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._move = redis.register_script(_MOVE)
        self._to_cloud = redis.register_script(_TO_CLOUD)

    async def to_cloud(self, ws: str, cid: str, message_id: str, priority: str, content: dict[str, object],
                       template: str, expect: str = "") -> bool:
        """A queued WhatsApp Web message (held, or on a lost number) becomes the campaign's fallback template
        on the Cloud API, still `queued`; False if it was not queued on WhatsApp Web (as `expect`)."""
        entry = history_entry("queued", time.time(), campaign_move=True, provider=META, fallback_template=template)
        return bool(await self._to_cloud(
            keys=[keys.message(ws, message_id), keys.message_history(ws, message_id), keys.cloud_queue(ws, priority),
                  keys.campaign_counts(ws)],
            args=[cid, expect, orjson.dumps(content).decode(), entry, message_id],
        ))

    async def hold(self, ws: str, cid: str, message_id: str, expect: str = "") -> bool:
        """Take a queued message off its number (pause, a lost number); False if it was not queued there."""
        return await self._run(ws, cid, message_id, expect, HELD, "", {"held": True})

    async def place(self, ws: str, cid: str, message_id: str, sid: str, priority: str, expect: str = "") -> bool:
        """Queue a queued (held, or on a lost number) message on number `sid`."""
        return await self._run(ws, cid, message_id, expect, sid, keys.queue(ws, sid, priority), {"session_id": sid})

    async def cancel(self, ws: str, cid: str, message_id: str) -> bool:
        """A queued message of a cancelled campaign: failed `campaign_cancelled`, never sent."""
        return await self._run(ws, cid, message_id, "", CANCELLED, "", {"error": CANCELLED_CODE})

    async def _run(self, ws: str, cid: str, message_id: str, expect: str, target: str, queue: str,
                   note: dict[str, object]) -> bool:
        status = "failed" if target == CANCELLED else "queued"
        entry = history_entry(status, time.time(), campaign_move=True, **note)
        return bool(await self._move(
            keys=[keys.message(ws, message_id), keys.message_history(ws, message_id),
                  queue or keys.message(ws, message_id), keys.campaign_counts(ws)],
            args=[cid, expect, target, entry, message_id],
        ))
