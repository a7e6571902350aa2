"""One way to open Redis, so every owner uses the same options."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str) -> aioredis.Redis:
    # decode_responses keeps stream fields and hashes as str throughout. The read timeout must
    # outlast our longest blocking XREAD (10 s); redis-py's default of 5 s would cut it.
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                   socket_timeout=30, socket_connect_timeout=5)
