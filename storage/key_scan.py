"""SCAN over the keyspace in batches: the sweeps that must find keys by pattern (retention, a person's erase,
a workspace's purge) read it this way, never with KEYS, so Redis answers others between the batches.

On a Redis Cluster each primary holds its own part of the keyspace and SCAN walks one node: the batches come
from every primary in turn, or only from the node owning the slot when the pattern's literal start names a
hash tag (`wa:{<ws>}:...`: a workspace's keys all live in its slot, storage/keys.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from wa_ray.storage.redis_client import RedisClient, is_cluster_client
from wa_ray.storage.slots import pattern_tag

SCAN_COUNT = 1000


async def scan_batches(redis: RedisClient, pattern: str) -> AsyncIterator[list[str]]:
    """The names matching `pattern`, a SCAN reply's batch at a time (each non-empty). A pattern's only glob
    characters must be its own `*`s: ids never hold glob characters (wa_ray/ids.py)."""
    if not is_cluster_client(redis):
        async for batch in _scan(redis, pattern):
            yield batch
        return
    await redis.initialize()  # the topology, before its nodes are named
    tag = pattern_tag(pattern)
    nodes = [redis.get_node_from_key(tag)] if tag else redis.get_primaries()
    for node in nodes:
        async for batch in _scan(redis, pattern, node):
            yield batch


async def _scan(redis: RedisClient, pattern: str, node: object = None) -> AsyncIterator[list[str]]:
    """One server's SCAN, to its end. On a cluster `node` is the one asked, and its reply's cursor is keyed by
    the node's name."""
    cursor = 0
    target = {} if node is None else {"target_nodes": node}
    while True:
        cursor, batch = await redis.scan(cursor, match=pattern, count=SCAN_COUNT, **target)
        if isinstance(cursor, dict):
            [cursor] = cursor.values()
        if batch:
            yield list(batch)
        if int(cursor) == 0:
            return


async def scan_names(redis: RedisClient, pattern: str) -> list[str]:
    return [name async for batch in scan_batches(redis, pattern) for name in batch]
