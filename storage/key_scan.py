"""SCAN over the keyspace in batches: the sweeps that must find keys by pattern (retention, a person's erase,
a workspace's purge) read it this way, never with KEYS, so Redis answers others between the batches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis

SCAN_COUNT = 1000


async def scan_batches(redis: aioredis.Redis, pattern: str) -> AsyncIterator[list[str]]:
    """The names matching `pattern`, a SCAN reply's batch at a time (each non-empty). A pattern's only glob
    characters must be its own `*`s: ids never hold glob characters (wa_ray/ids.py)."""
    cursor = 0
    while True:
        cursor, batch = await redis.scan(cursor, match=pattern, count=SCAN_COUNT)
        if batch:
            yield list(batch)
        if int(cursor) == 0:
            return


async def scan_names(redis: aioredis.Redis, pattern: str) -> list[str]:
    return [name async for batch in scan_batches(redis, pattern) for name in batch]
