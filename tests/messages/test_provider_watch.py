"""The provider watcher on real Redis: one workspace it cannot evaluate must not hold back the others."""

from __future__ import annotations

import uuid

from serve_app.provider_selector import ProviderSelector
from sessions.crypto import MasterKey
from storage import keys
from storage.providers import CloudCredentials, ProviderConfig, ProviderStore
from wa_ray.runtime import RuntimeConfig


async def test_a_workspace_that_cannot_be_evaluated_does_not_stop_the_round(redis, bare_redis_url, tmp_path) -> None:
    run = uuid.uuid4().hex[:8]
    bad, good = f"aaa-{run}", f"zzz-{run}"  # sorted: the bad one is evaluated first
    key_b64 = MasterKey.generate_b64()
    other = ProviderStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    await other.set(bad, ProviderConfig(cloud=CloudCredentials("9001", "token", "secret")), None)  # another key
    ours = ProviderStore(redis, MasterKey.from_b64(key_b64))
    await ours.set(good, ProviderConfig(), None)
    await redis.set(keys.provider_current(good), "meta")  # what it was; now nothing can send for it

    cls = ProviderSelector.func_or_class
    selector = cls.__new__(cls)
    await selector.__init__(RuntimeConfig(redis_url=bare_redis_url, web_url="http://127.0.0.1:9",
                                          data_dir=str(tmp_path), master_key_b64=key_b64))
    selector._task.cancel()  # one round, run here
    try:
        await selector.watch_round()
        assert await redis.get(keys.provider_current(good)) == "none", "the workspace after the bad one was evaluated"
        assert selector._failing.get(bad), "the bad one is remembered (and logged once), not silently skipped"
    finally:
        await redis.srem(keys.provider_workspaces(), bad, good)
        await selector._redis.aclose()
