"""The live service writes today's key layout, and on a Redis Cluster spreads workspaces over the masters.

Runs in the default suite (embedded Redis) and again in `scripts/test --all`'s Redis Cluster pass, where the
shared service starts on three masters (tests/conftest.py `service_redis_url`)."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from tests.receiver import running_receiver
from wa_ray.storage import keys
from wa_ray.storage.layout_migration import old_names
from wa_ray.storage.redis_client import connect, is_cluster
from wa_ray.storage.slots import slot_of

# three workspaces whose tags hash to slots 4748, 7741 and 11304: one on each master of a three-master cluster
SPREAD = ("t2", "ws-a", "acme")


async def test_the_service_writes_the_tagged_layout_and_a_cluster_spreads_it(api, service) -> None:
    with running_receiver() as receiver:
        for ws in SPREAD:
            put = await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": receiver.url,
                                                                     "secret": "whsec-0123456789abcdef"})
            assert put.status_code == 204, put.text
    redis = connect(service.config.redis_url)
    try:
        assert await redis.get(keys.layout()) == keys.LAYOUT
        left, sample = await old_names(redis)
        assert left == 0, sample
        for ws in SPREAD:
            assert await redis.exists(keys.webhook(ws)) == 1
            assert slot_of(keys.webhook(ws)) == slot_of(keys.events(ws)) == slot_of(keys.message(ws, "msg_0"))
        if not is_cluster(service.config.redis_url):
            return
        assert isinstance(redis, RedisCluster)
        info = await redis.cluster_info()
        assert info["cluster_state"] == "ok" and int(info["cluster_size"]) >= 3, info
        owners = {redis.get_node_from_key(keys.webhook(ws)).name for ws in SPREAD}
        assert len(owners) == 3, owners  # three masters, one workspace each
        for node in redis.get_primaries():
            assert await redis.execute_command("DBSIZE", target_nodes=node) > 0, node.name
    finally:
        await redis.aclose()
