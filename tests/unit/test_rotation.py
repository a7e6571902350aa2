import os

import pytest

from wa_ray.crypto import DecryptError, MasterKey, decrypt
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.auth_store import FileAuthStore, RedisAuthStore
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.entry.rotation import rotate


async def test_rotation_reencrypts_every_blob_and_is_rerunnable(redis, tmp_path) -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    await FileAuthStore(tmp_path, [old]).save("acme", "s1", b'{"state": 1}')
    await RedisAuthStore(redis, [old]).save("acme", "s2", b'{"state": 2}')
    await ApiKeyStore(redis, old).create("admin", key_id="k1", secret="api-secret")
    await WebhookConfigStore(redis, old).set("acme", WebhookTarget("http://127.0.0.1:9/hook", "hook-secret-0123456"))

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
