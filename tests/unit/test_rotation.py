"""Master key rotation (wa_ray/entry/rotation.py) re-encrypts each blob kind, found by the key functions'
own SCAN patterns, on one Redis and on a 3-master Redis Cluster (tests/redis_cluster.py)."""

import os

import pytest

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.crypto import DecryptError, MasterKey, decrypt
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.auth_store import FileAuthStore, RedisAuthStore
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.entry.rotation import rotate
from wa_ray.storage import keys


@pytest.fixture(params=["redis", "cluster_redis"])
def store(request: pytest.FixtureRequest):
    """The test's Redis: one server, then a cluster."""
    return request.getfixturevalue(request.param)


async def test_rotation_reencrypts_every_blob_and_is_rerunnable(store, tmp_path) -> None:
    redis = store
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    await FileAuthStore(tmp_path, [old]).save("acme", "s1", b'{"state": 1}')
    await RedisAuthStore(redis, [old]).save("acme", "s2", b'{"state": 2}')
    await ApiKeyStore(redis, old).create("admin", key_id="k1", secret="api-secret")
    await WebhookConfigStore(redis, old).set("acme", WebhookTarget("http://127.0.0.1:9/hook", "hook-secret-0123456"))
    # names next to the blobs' that are not blobs: left alone, whatever they hold
    await redis.hset(keys.webhook_policy("acme"), "secret", "not hex")
    await redis.set(keys.auth_state("acme", "s2") + ":copy", "not hex")  # matches `wa:{*}:auth:*`, names no session

    report = await rotate(tmp_path, redis, [old], new)
    assert (report.files, report.redis_auth, report.secrets) == (1, 1, 2)

    assert await FileAuthStore(tmp_path, [new]).load("acme", "s1") == b'{"state": 1}'
    assert await RedisAuthStore(redis, [new]).load("acme", "s2") == b'{"state": 2}'
    assert (await ApiKeyStore(redis, new).get("k1")).secret == "api-secret"
    assert (await WebhookConfigStore(redis, new).get("acme")).secret == "hook-secret-0123456"
    with pytest.raises(DecryptError):
        decrypt([old], (tmp_path / "sessions" / "acme" / "s1" / "auth.bin").read_bytes())

    again = await rotate(tmp_path, redis, [old], new)
    assert (again.files, again.redis_auth, again.secrets, again.unchanged) == (0, 0, 0, 4)
