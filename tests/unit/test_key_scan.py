"""SCAN in batches on a single Redis (storage/key_scan.py); the cluster's per-node walk is in test_redis_cluster.py."""

from __future__ import annotations

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.key_scan import SCAN_COUNT, scan_batches, scan_names


async def test_every_matching_name_in_non_empty_batches(redis: aioredis.Redis) -> None:
    names = [keys.message(ws, f"m{i}") for ws in ("acme", "t2") for i in range(SCAN_COUNT)]
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(name, "x")
        await pipe.execute()
    await redis.set(keys.workspaces(), "x")
    batches = [batch async for batch in scan_batches(redis, keys.message("acme", "*"))]
    assert all(batches) and len(batches) > 1
    assert sorted(n for batch in batches for n in batch) == sorted(n for n in names if "{acme}" in n)
    assert sorted(await scan_names(redis, "wa:*")) == sorted([*names, keys.workspaces()])
    assert await scan_names(redis, "nothing:*") == []
