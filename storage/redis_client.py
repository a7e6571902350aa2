"""One way to open Redis, so every owner uses the same options."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str) -> aioredis.Redis:
    # decode_responses keeps stream fields and hashes as str throughout
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
