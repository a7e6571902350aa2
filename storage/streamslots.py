"""Concurrent SSE streams per key and per token, counted in Redis so every replica sees the same count.

Each open stream holds a lease in one sorted set per subject (`keys.stream_slots`):
member = the stream's lease id, score = when the lease runs out (Redis's clock, ms).
The stream renews its leases while it runs and removes them when it ends; a replica
that dies without removing them frees its slots when the leases run out (`lease_s`),
because every acquire first drops expired members. Acquire is one script, so two
replicas racing for the last slot cannot both get it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from wa_ray.storage import keys

LEASE_S = 15.0

# KEYS: one sorted set per subject. ARGV: lease ms, member, then one cap per key (0 = no cap).
# Returns 0 when every lease is taken, else the 1-based index of the first subject at its cap.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  local cap = tonumber(ARGV[2 + i])
  if cap > 0 and redis.call('ZCARD', k) >= cap then return i end
end
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + lease, ARGV[2])
  redis.call('PEXPIRE', k, lease + 1000)
end
return 0
"""

# KEYS: the lease's sorted sets. ARGV: lease ms, member. Pushes the lease's end out again.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + lease, ARGV[2])
  redis.call('PEXPIRE', k, lease + 1000)
end
return 0
"""


@dataclass(frozen=True)
class Slot:
    subject: str  # e.g. "key:acme" or "token:3f9c..."
    cap: int  # 0 = not capped (still counted)


@dataclass(frozen=True)
class Lease:
    member: str
    redis_keys: tuple[str, ...]


class SlotsFull(Exception):
    def __init__(self, subject: str) -> None:
        super().__init__(subject)
        self.subject = subject


class StreamSlots:
    def __init__(self, redis: aioredis.Redis, lease_s: float = LEASE_S) -> None:
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def acquire(self, slots: Sequence[Slot]) -> Lease:
        """One lease in every subject's set, or none at all: SlotsFull names the first one at its cap."""
        lease = Lease(secrets.token_hex(8), tuple(keys.stream_slots(s.subject) for s in slots))
        full = int(await self._acquire(keys=list(lease.redis_keys),
                                       args=[self._lease_ms, lease.member, *(s.cap for s in slots)]))
        if full:
            raise SlotsFull(slots[full - 1].subject)
        return lease

    async def renew(self, lease: Lease) -> None:
        await self._renew(keys=list(lease.redis_keys), args=[self._lease_ms, lease.member])

    async def release(self, lease: Lease) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in lease.redis_keys:
                pipe.zrem(key, lease.member)
            await pipe.execute()

    async def count(self, subject: str) -> int:
        """Live leases of one subject (for tests and metrics); expired ones are not counted."""
        t = await self._redis.time()
        now_ms = int(t[0]) * 1000 + int(t[1]) // 1000
        return int(await self._redis.zcount(keys.stream_slots(subject), f"({now_ms}", "+inf"))
