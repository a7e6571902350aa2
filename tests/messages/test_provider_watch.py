"""The provider watcher on real Redis: one workspace it cannot evaluate must not hold back the others."""

from __future__ import annotations

import uuid

import orjson

from wa_ray.serve_app.provider_selector import ProviderSelector, record_first_choice
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import write_key_file
from wa_ray.storage import keys
from wa_ray.storage.providers import CloudCredentials, ProviderConfig, ProviderStore
from wa_ray.storage.registry import SessionRegistry
from wa_ray.runtime import RuntimeConfig


def key_file(tmp_path, key_b64: str):
    """The key where the selector's process reads it (a file), never in its config."""
    path = tmp_path / "master.key"
    write_key_file(path, [MasterKey.from_b64(key_b64)])
    return path


async def _selector(bare_redis_url: str, key_b64: str, tmp_path) -> ProviderSelector:
    cls = ProviderSelector.func_or_class
    selector = cls.__new__(cls)
    await selector.__init__(RuntimeConfig(redis_url=bare_redis_url, web_url="http://127.0.0.1:9",
                                          data_dir=str(tmp_path), master_key_file=str(key_file(tmp_path, key_b64))))
    selector._task.cancel()  # rounds are run by the test
    return selector


async def test_the_first_flip_after_a_config_is_written_is_announced(redis, bare_redis_url, tmp_path) -> None:
    """The config's write records the choice of that moment (as PUT .../provider does), so a session that
    links before the watcher's first look at the workspace still flips it with a provider.changed."""
    ws = f"first-{uuid.uuid4().hex[:8]}"
    key_b64 = MasterKey.generate_b64()
    store = ProviderStore(redis, MasterKey.from_b64(key_b64))
    await store.set(ws, ProviderConfig(cloud=CloudCredentials("9002", "token", "secret")), None)
    await record_first_choice(redis, ws, "meta")  # no session yet: the Cloud API
    registry = SessionRegistry(redis)
    await registry.register(ws, "s1", "node")
    await registry.set_state(ws, "s1", "connected")  # linked before the watcher looked
    selector = await _selector(bare_redis_url, key_b64, tmp_path)
    try:
        await selector.watch_round()
        events = [orjson.loads(f["e"]) for _, f in await redis.xrange(keys.events(ws))]
        changed = [e for e in events if e["type"] == "provider.changed"]
        assert [(e["data"]["from"], e["data"]["to"]) for e in changed] == [("meta", "webjs")], events
        await record_first_choice(redis, ws, "meta")  # a later config write never rewinds what was announced
        assert await redis.get(keys.provider_current(ws)) == "webjs"
    finally:
        await redis.srem(keys.provider_workspaces(), ws)
        await selector._redis.aclose()


async def test_a_workspace_that_cannot_be_evaluated_does_not_stop_the_round(redis, bare_redis_url, tmp_path) -> None:
    run = uuid.uuid4().hex[:8]
    bad, good = f"aaa-{run}", f"zzz-{run}"  # sorted: the bad one is evaluated first
    key_b64 = MasterKey.generate_b64()
    other = ProviderStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    await other.set(bad, ProviderConfig(cloud=CloudCredentials("9001", "token", "secret")), None)  # another key
    ours = ProviderStore(redis, MasterKey.from_b64(key_b64))
    await ours.set(good, ProviderConfig(), None)
    await redis.set(keys.provider_current(good), "meta")  # what it was; now nothing can send for it

    selector = await _selector(bare_redis_url, key_b64, tmp_path)
    try:
        await selector.watch_round()
        assert await redis.get(keys.provider_current(good)) == "none", "the workspace after the bad one was evaluated"
        assert selector._failing.get(bad), "the bad one is remembered (and logged once), not silently skipped"
    finally:
        await redis.srem(keys.provider_workspaces(), bad, good)
        await selector._redis.aclose()
