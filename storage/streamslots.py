"""Concurrent SSE streams per key and per token, counted in Redis so every replica sees the same count.

Each open stream holds a lease in one sorted set per capped count: its API key's
(`keys.key_stream_slots`) and its token's (`keys.token_stream_slots`, named under
the key that issued the token, so both are in the key's hash slot of a Redis Cluster):
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

from wa_ray.storage import keys
from wa_ray.storage.redis_client import RedisClient

LEASE_S = 15.0

# KEYS: one sorted set per capped count. ARGV: lease ms, member, then one cap per key (0 = no cap).
# Returns 0 when every lease is taken, else the 1-based index of the first key at its cap.
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
    """A place under one cap: an API key's own (`token_id` None) or one of its tokens'. The key id of a token
    is the key that issued it (`tokens.CLI_ISSUER` for the operator's CLI)."""

    key_id: str
    cap: int = 0  # 0 = not capped (still counted)
    token_id: str | None = None

    @property
    def per(self) -> str:
        return "key" if self.token_id is None else "token"

    @property
    def redis_key(self) -> str:
        if self.token_id is None:
            return keys.key_stream_slots(self.key_id)
        return keys.token_stream_slots(self.key_id, self.token_id)


@dataclass(frozen=True)
class Lease:
    member: str
    redis_keys: tuple[str, ...]


class SlotsFull(Exception):
    def __init__(self, slot: Slot) -> None:
        super().__init__(slot.redis_key)
        self.slot = slot


class StreamSlots:
    def __init__(self, redis: RedisClient, lease_s: float = LEASE_S) -> None:
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def acquire(self, slots: Sequence[Slot]) -> Lease:
        """One lease in every slot's set, or none at all: SlotsFull names the first one at its cap.
        The slots are of one API key: one script, so one hash slot of a Redis Cluster."""
        if len({s.key_id for s in slots}) != 1:
            raise ValueError("a lease holds the slots of exactly one API key")
        lease = Lease(secrets.token_hex(8), tuple(s.redis_key for s in slots))
        full = int(await self._acquire(keys=list(lease.redis_keys),
                                       args=[self._lease_ms, lease.member, *(s.cap for s in slots)]))
        if full:
            raise SlotsFull(slots[full - 1])
        return lease

    async def renew(self, lease: Lease) -> None:
        await self._renew(keys=list(lease.redis_keys), args=[self._lease_ms, lease.member])

    async def release(self, lease: Lease) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in lease.redis_keys:
                pipe.zrem(key, lease.member)
            await pipe.execute()

    async def count(self, slot: Slot) -> int:
        """Live leases under one cap (for tests and metrics); expired ones are not counted."""
        t = await self._redis.time()
        now_ms = int(t[0]) * 1000 + int(t[1]) // 1000
        return int(await self._redis.zcount(slot.redis_key, f"({now_ms}", "+inf"))
