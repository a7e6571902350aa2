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

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.redis_client import RedisClient

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
    """Every check is one script call on the client (or on the hot path's Batcher), never queued on a caller's
    pipeline: a script queued on a Redis Cluster pipeline gets no NOSCRIPT recovery (a node restarted or failed
    over would refuse it until something loads it), a script called on the client reloads itself."""

    def __init__(self, redis: RedisClient, batch: Batcher | None = None) -> None:
        self._script = redis.register_script(_GCRA)
        self._nonce_script = redis.register_script(_NONCE_GCRA)
        self._batch = batch  # the hot-path calls go through it when given (storage/batch.py)

    async def nonce_and_check(self, key_id: str, nonce: str, nonce_ttl_s: int, rate_per_s: float,
                              burst: int) -> tuple[bool, Verdict]:
        """(nonce was fresh, verdict of the key's rate limit), one round trip. The nonce is burnt (SET NX EX)
        when fresh; a replayed one answers (False, allowed) and charges nothing. rate_per_s <= 0: unlimited.
        Both keys are the API key's (`{k:<id>}`): one slot of a Redis Cluster."""
        interval = int(1_000_000 / rate_per_s) if rate_per_s > 0 else 0
        fresh, allowed, over_us = await self._nonce_script(keys=_nonce_keys(key_id, nonce),
                                                           args=[nonce_ttl_s, interval, burst],
                                                           client=self._batch)  # type: ignore[arg-type]
        return bool(int(fresh)), Verdict(bool(int(allowed)) or not int(fresh), int(over_us) / 1_000_000)

    async def check_key(self, key_id: str, rate_per_s: float, burst: int) -> Verdict:
        """An API key's rate limit, the budget its signed requests and the tokens it issued share."""
        return await self._check(keys.key_rate_limit(key_id), rate_per_s, burst)

    async def check(self, subject: str, rate_per_s: float, burst: int) -> Verdict:
        """The rate limit of anything else (a CLI token: `token:<jti>`; a number check): one key of its own."""
        return await self._check(keys.rate_limit(subject), rate_per_s, burst)

    async def _check(self, name: str, rate_per_s: float, burst: int) -> Verdict:
        if rate_per_s <= 0:
            return Verdict(True)
        reply = await self._script(keys=[name], args=[int(1_000_000 / rate_per_s), burst],
                                   client=self._batch)  # type: ignore[arg-type]
        return verdict(reply)


def _nonce_keys(key_id: str, nonce: str) -> list[str]:
    """KEYS of the nonce + rate-limit script."""
    return [keys.nonce(key_id, nonce), keys.key_rate_limit(key_id)]


def verdict(reply: list[Any]) -> Verdict:
    allowed, over_us = int(reply[0]), int(reply[1])
    return Verdict(bool(allowed), over_us / 1_000_000)
