"""Per-subject rate limiting in Redis (GCRA), shared by every replica.

GCRA keeps one timestamp per subject (the "theoretical arrival time") instead
of a window of counters, so a check is one small script call and the limit is
smooth: `rate` requests per second with bursts up to `burst`. The clock is
Redis's own (`TIME`), so replicas on different hosts agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher

_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - burst * interval
if over > 0 then
  return {0, over}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


# A signed request's nonce and its key's rate limit in one script call: one round trip, no pipeline
# (a redis-py pipeline that holds a script first sends SCRIPT EXISTS, one more round trip per request).
# A replayed nonce returns at once and is not charged to the key's rate. GCRA as above.
_NONCE_GCRA = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return {0, 0, 0} end
local interval = tonumber(ARGV[2])
if interval <= 0 then return {1, 1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - burst * interval
if over > 0 then
  return {1, 0, over}
end
redis.call('SET', KEYS[2], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 1, 0}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, batch: Batcher | None = None) -> None:
        self._script = redis.register_script(_GCRA)
        self._nonce_script = redis.register_script(_NONCE_GCRA)
        self._batch = batch  # the hot-path call goes through it when given (storage/batch.py)

    async def nonce_and_check(self, nonce_key: str, nonce_ttl_s: int, subject: str, rate_per_s: float,
                              burst: int) -> tuple[bool, Verdict]:
        """(nonce was fresh, rate verdict), one round trip. The nonce is burnt (SET NX EX) when fresh; a
        replayed one answers (False, allowed) and charges nothing. rate_per_s <= 0: unlimited."""
        interval = int(1_000_000 / rate_per_s) if rate_per_s > 0 else 0
        fresh, allowed, over_us = await self._nonce_script(keys=[nonce_key, keys.rate_limit(subject)],
                                                           args=[nonce_ttl_s, interval, burst],
                                                           client=self._batch)  # type: ignore[arg-type]
        return bool(int(fresh)), Verdict(bool(int(allowed)) or not int(fresh), int(over_us) / 1_000_000)

    async def check_in(self, pipe: Any, subject: str, rate_per_s: float, burst: int) -> bool:
        """Queue the check on a pipeline; read its reply with `verdict()`. False (nothing queued) when unlimited."""
        if rate_per_s <= 0:
            return False
        await self._script(keys=[keys.rate_limit(subject)], args=[int(1_000_000 / rate_per_s), burst], client=pipe)
        return True

    async def check(self, subject: str, rate_per_s: float, burst: int) -> Verdict:
        if rate_per_s <= 0:
            return Verdict(True)
        reply = await self._script(keys=[keys.rate_limit(subject)], args=[int(1_000_000 / rate_per_s), burst])
        return verdict(reply)


def verdict(reply: list[Any]) -> Verdict:
    allowed, over_us = int(reply[0]), int(reply[1])
    return Verdict(bool(allowed), over_us / 1_000_000)
