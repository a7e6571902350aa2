"""Hold, place and cancel a campaign's queued WhatsApp Web message: one Lua step each, like storage/messages.py.

A campaign message that is still `queued` may change number: paused (held: it leaves every session queue),
resumed or redistributed (placed on a number: its record names the session and that session's queue gets an
entry), or cancelled (never sent). Only `queued` moves; a `sending` one is its sender's to resolve.

Why a move can never send twice: the record's `session_id` is the only thing a sender trusts. The old
session's queue keeps its stale entry, and its sender drops it (`_ours_to_send`: another session now); a
sender that read the record before the move and was pacing records its intent with a session guard
(MessageStore.transition(session=...)), which fails once the record names another number. So whichever
sender moves the message `queued -> sending` first is the only one that sends it.

Counts: the same step moves the message's `wa:cmp-n` bucket (storage/tallies.py): `{cid}|{sid}|queued` -1
and the new one +1, where a held message counts under HELD and a cancelled one under CANCELLED (`failed`).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.messages import history_entry

HELD = "~held"  # not a session id (ids never start with ~): a held message's bucket in wa:cmp-n
CANCELLED = "~cancelled"
CANCELLED_CODE = "campaign_cancelled"

# KEYS: message, history, the destination queue (any key when not placing), campaign counts.
# ARGV: campaign id, expected current number ('' any, HELD), target (a session id, HELD, CANCELLED),
# history entry, message id.
_MOVE = """
local cur, cmp, sid, prov, held = unpack(redis.call('HMGET', KEYS[1], 'status', 'campaign', 'session_id',
                                                     'provider', 'held'))
if cur ~= 'queued' or cmp ~= ARGV[1] or prov ~= 'webjs' then return 0 end
local who = sid or ''
if held == '1' then who = '""" + HELD + """' end
if ARGV[2] ~= '' and who ~= ARGV[2] then return 0 end
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


class CampaignMoves:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._move = redis.register_script(_MOVE)

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
            keys=[keys.message(message_id), keys.message_history(message_id), queue or keys.message(message_id),
                  keys.campaign_counts(ws)],
            args=[cid, expect, target, entry, message_id],
        ))
