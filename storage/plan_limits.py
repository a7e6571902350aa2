"""Per-workspace plan limits an admin sets: how many numbers (sessions) and how many messages a UTC day.

A limit that is absent (None) is unlimited. The limits live in one hash per workspace
(`keys.plan_limits`); the day's message count in a counter per workspace and UTC day
(`keys.plan_messages`, expiring after two days).

Invariants:
* `charge_messages` is one Lua step that reads the limit and the day's count and adds `n` only when the
  sum stays within the limit, so concurrent chargers (ingress replicas, the campaign runner) never take
  the day over its max. A charge is all or nothing; a refused one answers `current` and `max`, so a
  batch caller may charge the remainder.
* Messages are counted only while a `messages_per_day` limit exists: the send path of a workspace
  without one makes no call here at all (it learns there is none from the provider snapshot), so a
  limit set mid-day starts counting from that moment.
* A number counts against `max_numbers` from the moment its creation reserves it (storage/numbers.py),
  so two concurrent creations cannot both take the last slot; lowering the limit never removes a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.tallies import day_of

MAX_NUMBERS_BOUNDS = (1, 100_000)
MESSAGES_PER_DAY_BOUNDS = (1, 10_000_000)
DAY_COUNTER_TTL_S = 2 * 24 * 3600  # the day's count outlives the day, so a GET near midnight still reads it
FIELDS = ("max_numbers", "messages_per_day")

# KEYS: the limits hash, the day's counter. ARGV: n, the counter's TTL. -> {ok, current, max or -1}
_CHARGE = """
local max = tonumber(redis.call('HGET', KEYS[1], 'messages_per_day') or '')
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if not max then return {1, cur, -1} end
local n = tonumber(ARGV[1])
if cur + n > max then return {0, cur, max} end
cur = redis.call('INCRBY', KEYS[2], n)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {1, cur, max}
"""
# Give back what a charge took for messages that were not accepted (never below zero).
_REFUND = """
local v = redis.call('DECRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL'); v = 0 end
return v
"""


@dataclass(frozen=True)
class PlanLimits:
    """None: unlimited."""

    max_numbers: int | None = None
    messages_per_day: int | None = None


@dataclass(frozen=True)
class Charge:
    """The outcome of a charge against a limit: `current` is the count after it (before it when refused)."""

    ok: bool
    current: int
    max: int | None


def _bounded(raw: str | None, bounds: tuple[int, int]) -> int | None:
    """A stored limit, or None when absent or not an integer within its bounds (never trusted blindly)."""
    try:
        value = int(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and bounds[0] <= value <= bounds[1] else None


class PlanLimitStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._charge = redis.register_script(_CHARGE)
        self._refund = redis.register_script(_REFUND)

    async def get(self, ws: str) -> PlanLimits:
        raw = await self._redis.hmget(keys.plan_limits(ws), list(FIELDS))
        return limits_of(dict(zip(FIELDS, raw)))

    async def set(self, ws: str, limits: PlanLimits) -> PlanLimits:
        """Replace the workspace's limits (a None field is removed: unlimited)."""
        values = {"max_numbers": limits.max_numbers, "messages_per_day": limits.messages_per_day}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.plan_limits(ws))
            present = {k: str(v) for k, v in values.items() if v is not None}
            if present:
                pipe.hset(keys.plan_limits(ws), mapping=present)
            await pipe.execute()
        return limits

    async def charge_messages(self, ws: str, n: int = 1, now: float | None = None) -> Charge:
        """Count `n` messages against today's (UTC) `messages_per_day`; refused (nothing counted) when they
        would take the day over it. Without a limit: ok, nothing counted."""
        if n < 1:
            raise ValueError("charge at least one message")
        ok, current, top = await self._charge(keys=[keys.plan_limits(ws), keys.plan_messages(ws, day_of(now))],
                                              args=[n, DAY_COUNTER_TTL_S])
        return Charge(bool(ok), int(current), None if int(top) < 0 else int(top))

    async def refund_messages(self, ws: str, n: int = 1, now: float | None = None) -> None:
        """Give back `n` charged messages that were not accepted (an idempotent repeat, a failed accept)."""
        await self._refund(keys=[keys.plan_messages(ws, day_of(now))], args=[n])

    async def messages_today(self, ws: str, now: float | None = None) -> int:
        return int(await self._redis.get(keys.plan_messages(ws, day_of(now))) or 0)


def limits_of(raw: dict[str, str | None]) -> PlanLimits:
    """Limits from the stored hash's fields (a value out of bounds or not an integer is no limit)."""
    return PlanLimits(_bounded(raw.get("max_numbers"), MAX_NUMBERS_BOUNDS),
                      _bounded(raw.get("messages_per_day"), MESSAGES_PER_DAY_BOUNDS))
