"""The provider watcher on real Redis: one workspace it cannot evaluate (it raises, or hangs) must not hold back
the others, and a round over hundreds of workspaces evaluates a bounded number of them at once."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from wa_ray.serve_app.provider_selector import ProviderSelector, record_first_choice
from wa_ray.serve_app.workspace_round import ROUND_CONCURRENCY, WorkspaceRound
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


async def _selector(bare_redis_url: str, key_b64: str, tmp_path, cls: type | None = None) -> ProviderSelector:
    cls = cls or ProviderSelector.func_or_class
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
        assert selector._round.failing.get(bad), "the bad one is remembered (and logged once), not silently skipped"
    finally:
        await redis.srem(keys.provider_workspaces(), bad, good)
        await selector._redis.aclose()


class CountingSelector(ProviderSelector.func_or_class):
    """The deployment as it runs, with a hook around `evaluate` that counts the evaluations in flight."""

    async def __init__(self, config: RuntimeConfig) -> None:
        self.in_flight = 0
        self.peak = 0
        self.evaluated: list[str] = []
        await super().__init__(config)

    async def evaluate(self, ws: str) -> str | None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().evaluate(ws)
        finally:
            self.in_flight -= 1
            self.evaluated.append(ws)


async def _many(store: ProviderStore, prefix: str, n: int) -> list[str]:
    """`n` workspaces with a provider config and no session (nothing can send for them)."""
    many = [f"{prefix}-{i:03d}" for i in range(n)]
    for ws in many:
        await store.set(ws, ProviderConfig(), None)
    return many


async def test_a_flip_among_hundreds_of_workspaces_is_announced_after_one_round(redis, bare_redis_url,
                                                                                tmp_path) -> None:
    run = uuid.uuid4().hex[:8]
    key_b64 = MasterKey.generate_b64()
    store = ProviderStore(redis, MasterKey.from_b64(key_b64))
    quiet = await _many(store, f"many-{run}", 300)
    flip = f"many-{run}-150x"  # sorted among the others, not first
    await store.set(flip, ProviderConfig(cloud=CloudCredentials("9003", "token", "secret")), None)
    await record_first_choice(redis, flip, "meta")
    registry = SessionRegistry(redis)
    await registry.register(flip, "s1", "node")
    await registry.set_state(flip, "s1", "connected")
    selector = await _selector(bare_redis_url, key_b64, tmp_path)
    try:
        await selector.watch_round()
        events = [orjson.loads(f["e"]) for _, f in await redis.xrange(keys.events(flip))]
        assert [(e["type"], e["data"]["from"], e["data"]["to"]) for e in events] == [
            ("provider.changed", "meta", "webjs")], events
        # every other workspace was looked at in the same round (its first look records, announces nothing)
        assert await redis.mget([keys.provider_current(ws) for ws in quiet]) == ["none"] * len(quiet)
        assert [ws for ws in quiet if await redis.exists(keys.events(ws))] == []
        assert not selector._round.failing
    finally:
        await redis.srem(keys.provider_workspaces(), flip, *quiet)
        await selector._redis.aclose()


async def test_a_round_evaluates_a_bounded_number_of_workspaces_at_once(redis, bare_redis_url, tmp_path) -> None:
    key_b64 = MasterKey.generate_b64()
    many = await _many(ProviderStore(redis, MasterKey.from_b64(key_b64)), f"bound-{uuid.uuid4().hex[:8]}", 300)
    selector = await _selector(bare_redis_url, key_b64, tmp_path, CountingSelector)
    assert isinstance(selector, CountingSelector)
    try:
        await selector.watch_round()
        assert sorted(selector.evaluated) == many, "each workspace evaluated once"
        assert selector.in_flight == 0, "the round returned only once its evaluations had ended"
        assert 1 < selector.peak <= ROUND_CONCURRENCY, selector.peak
    finally:
        await redis.srem(keys.provider_workspaces(), *many)
        await selector._redis.aclose()


async def test_a_workspace_whose_evaluation_hangs_does_not_hold_the_round(redis, bare_redis_url, tmp_path) -> None:
    run = uuid.uuid4().hex[:8]
    stuck, others = f"mmm-{run}", [f"aaa-{run}", f"zzz-{run}"]
    key_b64 = MasterKey.generate_b64()
    store = ProviderStore(redis, MasterKey.from_b64(key_b64))
    for ws in [stuck, *others]:
        await store.set(ws, ProviderConfig(), None)
        await redis.set(keys.provider_current(ws), "meta")  # what it was; now nothing can send for it
    selector = await _selector(bare_redis_url, key_b64, tmp_path)
    hang = True
    cancelled: list[str] = []

    async def evaluate(ws: str) -> str | None:
        """The selector's own evaluation, but `stuck` never answers while `hang` holds."""
        if ws == stuck and hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(ws)
                raise
        return await selector.evaluate(ws)

    watch = WorkspaceRound(evaluate, "provider evaluation", timeout_s=2.0)
    try:
        await watch.run(await store.workspaces())
        assert [await redis.get(keys.provider_current(ws)) for ws in others] == ["none", "none"]
        assert cancelled == [stuck], "the stuck evaluation was ended, not left running into the next round"
        assert "timed out" in watch.failing[stuck]
        assert await redis.get(keys.provider_current(stuck)) == "meta"
        hang = False
        await watch.run(await store.workspaces())
        assert await redis.get(keys.provider_current(stuck)) == "none"
        assert stuck not in watch.failing, "a workspace that answers again is no longer failing"
    finally:
        await redis.srem(keys.provider_workspaces(), stuck, *others)
        await selector._redis.aclose()


async def test_a_rescue_cut_short_is_finished_by_the_next_round(redis, bare_redis_url, tmp_path) -> None:
    """An entry the rerouter had read when its rescue stopped (the replica restarted, or the round's timeout
    cancelled it) stays in the rerouter's pending list: the next rescue of that queue must move it."""
    from wa_ray.serve_app.provider_selector import REROUTER
    from wa_ray.storage.messages import MessageStore, OutboundMessage

    ws = f"cut-{uuid.uuid4().hex[:8]}"
    key_b64 = MasterKey.generate_b64()
    await ProviderStore(redis, MasterKey.from_b64(key_b64)).set(
        ws, ProviderConfig(cloud=CloudCredentials("9003", "token", "secret")), None)
    registry = SessionRegistry(redis)
    await registry.register(ws, "s1", "node")
    await registry.set_state(ws, "s1", "logged_out")  # gone: its queue is rescued at once
    mid = f"msg_{uuid.uuid4().hex[:16]}"
    await MessageStore(redis).accept(OutboundMessage(mid, ws, "s1", "15550001111", "hi", "normal"), None)
    queue = keys.queue(ws, "s1", "normal")
    try:
        await redis.xgroup_create(queue, keys.QUEUE_GROUP, id="0", mkstream=True)
    except Exception:  # the group exists already (created with the queue)
        pass
    read = await redis.xreadgroup(keys.QUEUE_GROUP, REROUTER, {queue: ">"})  # the rescue that stopped here
    assert [fields["m"] for _, items in read for _, fields in items] == [mid]
    selector = await _selector(bare_redis_url, key_b64, tmp_path)
    try:
        await selector.watch_round()
        record = await MessageStore(redis).record(ws, mid)
        assert record["provider"] == "meta", record
        assert await redis.xlen(queue) == 0
    finally:
        await redis.srem(keys.provider_workspaces(), ws)
        await selector._redis.aclose()
