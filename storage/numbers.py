"""A workspace's numbers (its WhatsApp Web sessions): the primary one, the slot a new one takes under the
plan's `max_numbers`, and the order the default sender prefers them in.

Invariants:
* One primary per workspace (`keys.primary` holds its session id). Clearing is compare-and-delete: a
  session that is no longer the primary (another was made primary meanwhile) never clears the new one.
* `reserve` adds a new session id to the workspace's index in the same Lua step that counts the index,
  so concurrent creations never take the workspace past `max_numbers`; an id already there is always
  allowed (creating an existing session is idempotent).
* `default_inputs` is what the provider snapshot carries for the default sender: the primary, the plan
  limits, and the healthy sessions ranked roomiest first by storage/headroom.py (ties by id, so equal
  numbers keep today's alphabetical order). At most two round trips, and none for the headroom when
  fewer than two sessions can send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.contact_log import DEFAULT_DAILY_NEW_CONTACTS
from wa_ray.storage.headroom import Headroom, headroom
from wa_ray.storage.pacing import PacingPolicy
from wa_ray.storage.plan_limits import FIELDS, Charge, PlanLimits, limits_of

# KEYS: the primary key. ARGV: the session id. Deletes only when it is the primary. -> 1 cleared, 0 not
_CLEAR_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]); return 1 end
return 0
"""
# KEYS: the session index, the session's record. ARGV: the session id, max, the workspace.
# -> {ok, count after, max}. A reserved id has a record that names it, as every indexed id does.
_RESERVE = """
local n = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1, n, tonumber(ARGV[2])} end
if n >= tonumber(ARGV[2]) then return {0, n, tonumber(ARGV[2])} end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'workspace_id', ARGV[3], 'session_id', ARGV[1])
return {1, n + 1, tonumber(ARGV[2])}
"""


@dataclass(frozen=True)
class DefaultInputs:
    """The default sender's inputs, as the provider snapshot carries them."""

    primary: str | None = None
    ranked: list[str] = field(default_factory=list)
    limits: PlanLimits = field(default_factory=PlanLimits)


def ranked(rooms: dict[str, Headroom]) -> list[str]:
    """Pure: session ids roomiest first (Headroom.rank), ties by id."""
    return [h.sid for h in sorted(rooms.values(), key=lambda h: (tuple(-x for x in h.rank()), h.sid))]


class NumberStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._clear_if = redis.register_script(_CLEAR_IF)
        self._reserve = redis.register_script(_RESERVE)

    async def primary(self, ws: str) -> str | None:
        return await self._redis.get(keys.primary(ws)) or None

    async def set_primary(self, ws: str, sid: str) -> None:
        await self._redis.set(keys.primary(ws), sid)

    async def clear_primary(self, ws: str, sid: str) -> bool:
        """Clear the primary if it is `sid`; False when it was not (nothing changes)."""
        return bool(await self._clear_if(keys=[keys.primary(ws)], args=[sid]))

    async def count(self, ws: str) -> int:
        return int(await self._redis.scard(keys.session_index(ws)))

    async def reserve(self, ws: str, sid: str, max_numbers: int) -> Charge:
        """Take a slot for `sid` under `max_numbers` (its id joins the index now; the registry's `remove`
        gives the slot back when the creation fails)."""
        ok, current, top = await self._reserve(keys=[keys.session_index(ws), keys.session(ws, sid)],
                                               args=[sid, max_numbers, ws])
        return Charge(bool(ok), int(current), int(top))

    async def default_inputs(self, ws: str, healthy: list[str], policy: PacingPolicy,
                             daily_new_contacts: int = DEFAULT_DAILY_NEW_CONTACTS) -> DefaultInputs:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.primary(ws))
            pipe.hmget(keys.plan_limits(ws), list(FIELDS))
            primary, raw = await pipe.execute()
        order = sorted(healthy)
        if len(order) > 1:
            order = ranked(await headroom(self._redis, ws, order, policy, daily_new_contacts))
        return DefaultInputs(primary or None, order, limits_of(dict(zip(FIELDS, raw))))
