"""How a Redis URL becomes a client (storage/redis_client.py) and which keys share a slot (storage/slots.py);
no server needed: clients connect lazily."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot

from wa_ray.storage import keys
from wa_ray.storage.redis_client import (MAX_CONNECTIONS, addresses, connect, connect_sync, is_cluster,
                                         is_cluster_client)
from wa_ray.storage.slots import by_slot, pattern_tag, slot_of

CLUSTER = "redis+cluster://user:p%40ss@10.0.0.1:7001,10.0.0.2:7002,[::1]:7003/0?client_name=wa"


def test_the_scheme_says_cluster() -> None:
    assert is_cluster(CLUSTER) and is_cluster("REDISS+CLUSTER://h:1")
    assert not any(map(is_cluster, ["redis://h:1/0", "rediss://h", "unix:///tmp/r.sock", "redis+clusterx://h"]))


async def test_a_single_server_url_opens_the_plain_client_with_the_service_options() -> None:
    client = connect("redis://:secret@127.0.0.1:6390/0")
    try:
        assert type(client) is aioredis.Redis and not is_cluster_client(client)
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["password"], kwargs["port"], kwargs["socket_timeout"], kwargs["health_check_interval"]) == \
            ("secret", 6390, 30, 30)
        assert client.connection_pool.max_connections == MAX_CONNECTIONS
    finally:
        await client.aclose()


async def test_a_cluster_url_names_every_startup_node_and_shares_credentials_and_options() -> None:
    client = connect(CLUSTER, max_connections=7)
    try:
        assert isinstance(client, AsyncRedisCluster) and is_cluster_client(client)
        nodes = list(client.nodes_manager.startup_nodes.values())
        assert sorted((n.host, int(n.port)) for n in nodes) == [("10.0.0.1", 7001), ("10.0.0.2", 7002), ("::1", 7003)]
        node = nodes[0]
        assert node.max_connections == 7, "the bound is per node"
        kwargs = node.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["client_name"]) == ("user", "p@ss", "wa")
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["decode_responses"]) == (30, 5, True)
    finally:
        await client.aclose()


def test_the_sync_clients_follow_the_same_urls() -> None:
    plain = connect_sync("redis://127.0.0.1:6390/0", decode_responses=False)
    assert type(plain) is redis.Redis
    assert plain.connection_pool.connection_kwargs["decode_responses"] is False
    plain.close()
    with pytest.raises(redis.exceptions.RedisClusterException):  # the sync client asks its nodes at once
        connect_sync("redis+cluster://127.0.0.1:1")


def test_addresses_of_a_url() -> None:
    assert addresses(CLUSTER) == [("10.0.0.1", 7001), ("10.0.0.2", 7002), ("::1", 7003)]
    assert addresses("redis+cluster://h") == [("h", 6379)]
    assert addresses("rediss://:pw@host:6380/0") == [("host", 6380)]
    assert addresses("unix:///tmp/redis.sock") == []
    with pytest.raises(ValueError):
        connect("redis+cluster://user@/0")


def test_by_slot_keeps_the_order_of_groups_and_of_keys_within_them() -> None:
    streams = [keys.cloud_queue(ws, p) for p in keys.PRIORITIES for ws in ("acme", "t2")]
    assert by_slot(streams) == [[keys.cloud_queue("acme", p) for p in keys.PRIORITIES],
                                [keys.cloud_queue("t2", p) for p in keys.PRIORITIES]]
    assert slot_of(keys.events("acme")) == key_slot(b"acme") == slot_of(b"wa:{acme}:x")


@pytest.mark.parametrize(("pattern", "tag"), [
    (keys.message("acme", "*"), "{acme}"),
    (keys.nonce("k1", "*"), "{k:k1}"),
    (f"{keys.workspace_prefix('acme')}*", "{acme}"),
    ("wa:*", None),
    ("wa:{*}:msg:*", None),  # the tag itself is a glob: matching keys may hold any tag
    ("wa:{ac*me}:x", None),
    ("wa:{}:x*", None),  # an empty tag is no tag: Redis hashes the whole name
    ("wa:x:*", None),
    ("wa:{acme", None),
])
def test_a_pattern_names_one_slot_only_with_a_whole_literal_tag(pattern: str, tag: str | None) -> None:
    assert pattern_tag(pattern) == tag
