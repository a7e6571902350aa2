"""One way to open Redis, so every owner uses the same options."""

from __future__ import annotations

import redis.asyncio as aioredis

# redis-py 8's pool holds at most 100 connections by default and raises MaxConnectionsError for the 101st
# concurrent command (not a wait): the ingress at 200 req/s overloaded had more than that in flight and
# answered those requests 500. The ingress caps its own concurrency (serve_app/admission.py, 512 in flight
# by default, each holding at most one connection at a time), so the pool must sit above that cap.
MAX_CONNECTIONS = 1024


def connect(url: str, *, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    # decode_responses keeps stream fields and hashes as str throughout. The read timeout must
    # outlast our longest blocking XREAD (10 s); redis-py's default of 5 s would cut it.
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                   socket_timeout=30, socket_connect_timeout=5, max_connections=max_connections)
