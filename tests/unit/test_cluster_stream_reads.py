"""XREAD and XREADGROUP on a real 3-master Redis Cluster are routed by the client, without a `COMMAND GETKEYS`
round trip each (storage/cluster_routing.py): the keys found agree with the server's, and the reads, single
and pipelined, reach the right master."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ResponseError

from tests import redis_cluster
from wa_ray.storage import keys
from wa_ray.storage.cluster_routing import stream_read_keys
from wa_ray.storage.redis_client import RedisClient, SyncRedisClient, connect, connect_sync

redis_cluster_url = redis_cluster.redis_cluster_url
cluster_redis = redis_cluster.cluster_redis

WORKSPACES = ("t2", "ws-a", "acme")  # one on each master (tests/unit/test_redis_cluster.py)

# argument lists as redis-py sends them and as a hand-written call might: the keyword in either case, a group
# or consumer named like the keyword, options in any order, several streams of one slot
ARGUMENT_LISTS: list[tuple[Any, ...]] = [
    ("XREAD", "STREAMS", "{a}s1", "0-0"),
    ("XREAD", b"COUNT", "10", b"BLOCK", "5", b"STREAMS", "{a}s1", "{a}s2", "0-0", "$"),
    ("xread", "block", "0", "count", "1", "streams", "{a}s1", "0"),
    ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "{a}s1", ">"),
    ("XREADGROUP", b"GROUP", "STREAMS", "streams", b"COUNT", "3", b"NOACK", b"STREAMS", "{a}s1", "{a}s2", ">", "0"),
    ("XREADGROUP", "GROUP", "g", "STREAMS", "BLOCK", "1", "STREAMS", "{a}STREAMS", ">"),
]
# lists the server would reject: no keys found here, so they go to redis-py and the server, whose error the
# caller gets
REJECTED: list[tuple[Any, ...]] = [
    ("XREAD", "COUNT", "1"),
    ("XREAD", "STREAMS", "{a}s1", "{a}s2", "0"),
    ("XREAD", "STREAMS"),
    ("XREADGROUP", "GROUP", "g", "STREAMS", "{a}s1", ">"),  # the consumer is missing: STREAMS is its name
]


@pytest.fixture
def sync_cluster(redis_cluster_url: str) -> Iterator[SyncRedisClient]:
    client = connect_sync(redis_cluster_url)
    yield client
    client.close()


def _getkeys_calls(client: SyncRedisClient) -> int:
    """`COMMAND GETKEYS` calls served so far, summed over every primary."""
    assert hasattr(client, "get_primaries")
    total = 0
    for node in client.get_primaries():
        stats = node.redis_connection.info("commandstats")
        total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


def test_the_keys_found_are_the_servers(sync_cluster: SyncRedisClient) -> None:
    node = sync_cluster.get_primaries()[0].redis_connection
    for args in ARGUMENT_LISTS:
        assert stream_read_keys(args) is not None, args
        decoded = [k.decode() if isinstance(k, bytes) else k for k in stream_read_keys(args)]
        assert decoded == node.command_getkeys(*args), args
    for args in REJECTED:
        assert stream_read_keys(args) is None, args
    assert stream_read_keys(("XADD", "{a}s1", "*", "f", "v")) is None, "other commands are redis-py's to parse"


async def _reads(client: RedisClient) -> list[Any]:
    """One XREAD and one XREADGROUP per workspace stream, then the same in a pipeline."""
    streams = [keys.events(ws) for ws in WORKSPACES]
    got: list[Any] = []
    for stream in streams:
        got.append(await client.xread({stream: "0-0"}, count=5))
        got.append(await client.xreadgroup("g", "c", {stream: "0"}, count=5))
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xread({stream: "0-0"}, count=5)
        pipe.xreadgroup("g", "c", {stream: "0"}, count=5)
    got.extend(await pipe.execute())
    return got


async def test_reads_on_three_masters_cost_no_getkeys(redis_cluster_url: str, cluster_redis: RedisClient,
                                                      sync_cluster: SyncRedisClient) -> None:
    ids = {}
    for ws in WORKSPACES:
        stream = keys.events(ws)
        ids[stream] = await cluster_redis.xadd(stream, {"ws": ws})
        await cluster_redis.xgroup_create(stream, "g", id="0")
        await cluster_redis.xreadgroup("g", "c", {stream: ">"})  # one pending entry, read back with id 0 below

    before = _getkeys_calls(sync_cluster)
    ours = await _reads(cluster_redis)
    assert _getkeys_calls(sync_cluster) == before, "our client asked a server for the keys of a stream read"
    # each read found its entry on its own master
    expected = [[[stream, [(entry, {"ws": ws})]]] for ws, (stream, entry) in zip(WORKSPACES, ids.items())
                for _ in range(2)]
    assert ours[:6] == expected
    assert ours[6:] == expected

    # a list the server rejects gets the server's error through our client
    for args in REJECTED:
        with pytest.raises(ResponseError):
            await cluster_redis.execute_command(*args)

    # the counter sees the round trips when the stock client makes them: the check above can fail
    stock = AsyncRedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://").split(",")[0],
                                       decode_responses=True)
    try:
        before = _getkeys_calls(sync_cluster)
        assert await _reads(stock) == ours
        assert _getkeys_calls(sync_cluster) - before == 12
    finally:
        await stock.aclose()
