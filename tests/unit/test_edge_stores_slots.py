"""The webhook outbox, the metric fold, the rate limits and the stream slots on a Redis Cluster (issue 16).

Two halves. On the embedded Redis, a spy records every command these stores send and asserts the rule of the
key layout: the keys of each script call and of each transaction (WATCH included) hash to one slot
(`redis.crc.key_slot`). On a real three-master cluster (tests/redis_cluster.py; skipped without a
redis-server binary), the same stores run with their keys spread over the three masters, including after the
nodes forgot their scripts (NOSCRIPT), which a script queued on a cluster pipeline does not recover from alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.crc import key_slot

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.metrics import MetricsStore
from wa_ray.storage.outbox import Finished, FinishQueue, Outbox, RetryPolicy
from wa_ray.storage.ratelimit import RateLimiter
from wa_ray.storage.streamslots import Slot, SlotsFull, StreamSlots

# Workspaces and API key ids whose slots fall on each of the three masters of an even split
# (0-5460, 5461-10922, 10923-16383): {t2} 4748, {ws-a} 7741, {acme} 11304; {k:kc} 3772, {k:kb} 7837, {k:k1} 13323.
WORKSPACES = ("t2", "ws-a", "acme")
KEY_IDS = ("kc", "kb", "k1")


# --- the slot spy ----------------------------------------------------------------------------------------


def _keys_of(args: tuple[Any, ...]) -> list[str]:
    """The key names of one command as these stores send it (first argument, but for scripts and WATCH)."""
    name = str(args[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return [str(k) for k in args[3:3 + int(args[2])]]
    if name == "WATCH":
        return [str(k) for k in args[1:]]
    if name.startswith("SCRIPT") or name in ("MULTI", "EXEC", "DISCARD", "UNWATCH", "TIME", "PING", "INFO"):
        return []
    return [str(args[1])] if len(args) > 1 else []


class SlotSpy:
    """Records each direct command, each pipeline and each transaction (with the commands sent while WATCHing)."""

    def __init__(self) -> None:
        self.units: list[tuple[str, list[tuple[Any, ...]]]] = []

    def scripts(self) -> list[tuple[Any, ...]]:
        return [args for _, commands in self.units for args in commands if str(args[0]).upper() == "EVALSHA"]

    def transactions(self) -> list[list[tuple[Any, ...]]]:
        return [commands for kind, commands in self.units if kind == "transaction"]

    def assert_single_slot(self) -> None:
        for args in self.scripts():
            names = _keys_of(args)
            assert len({key_slot(n.encode()) for n in names}) <= 1, f"a script over several slots: {names}"
        for commands in self.transactions():
            names = [n for args in commands for n in _keys_of(args)]
            assert len({key_slot(n.encode()) for n in names}) <= 1, f"a transaction over several slots: {names}"


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlotSpy]:
    recorder = SlotSpy()
    direct, immediate, execute = (aioredis.Redis.execute_command, Pipeline.immediate_execute_command,
                                  Pipeline.execute)

    async def execute_command(self: aioredis.Redis, *args: Any, **options: Any) -> Any:
        recorder.units.append(("command", [args]))
        return await direct(self, *args, **options)

    async def immediate_execute_command(self: Pipeline, *args: Any, **options: Any) -> Any:
        self.__dict__.setdefault("_spy_watching", []).append(args)
        return await immediate(self, *args, **options)

    async def pipeline_execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        watched = self.__dict__.pop("_spy_watching", [])
        stack = [args for args, _ in self.command_stack]
        transactional = self.is_transaction or self.explicit_transaction
        recorder.units.append(("transaction" if transactional else "pipeline", watched + stack))
        return await execute(self, raise_on_error)

    monkeypatch.setattr(aioredis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(Pipeline, "immediate_execute_command", immediate_execute_command)
    monkeypatch.setattr(Pipeline, "execute", pipeline_execute)
    yield recorder


# --- scenarios, run on both -------------------------------------------------------------------------------


async def _leased(redis: Any, stream: str, n: int, ws: str) -> list[str]:
    """n entries of `stream` read by the dispatcher's group and not acknowledged, each with an attempt counted."""
    try:
        await redis.xgroup_create(stream, keys.WEBHOOK_GROUP, id="0", mkstream=True)
    except aioredis.ResponseError as exc:
        assert "BUSYGROUP" in str(exc)
    ids = [await redis.xadd(stream, {"n": str(i)}) for i in range(n)]
    await redis.xreadgroup(keys.WEBHOOK_GROUP, "dispatcher", {stream: ">"})
    for entry_id in ids:
        await redis.hincrby(keys.webhook_attempts(ws), f"{stream}|{entry_id}", 1)
    return ids


async def _pending(redis: Any, stream: str) -> int:
    return int((await redis.xpending(stream, keys.WEBHOOK_GROUP))["pending"])


async def _outbox_scenario(redis: Any) -> None:
    """Deliveries of three workspaces (an event stream each, an endpoint queue, a replay stream) settled in one
    group commit; a dead letter replayed; a policy set."""
    outbox = Outbox(redis, RetryPolicy())
    done: list[Finished] = []
    for ws in WORKSPACES:
        done += [Finished(ws, keys.events(ws), i, "delivered") for i in await _leased(redis, keys.events(ws), 3, ws)]
    queue = keys.webhook_queue("acme", "ep1")
    done += [Finished("acme", queue, i, "failed", delete=True) for i in await _leased(redis, queue, 2, "acme")]
    await outbox.dead_letter("t2", {"id": "1-0", "type": "message.received"}, "max_attempts: http_5xx", 3, "5xx")
    await outbox.dead_letter("ws-a", {"id": "2-0", "type": "message.sent"}, "permanent: http_4xx", 1, "4xx",
                             endpoint="ep2")
    assert await outbox.replay("t2") == 1 and await outbox.replay("ws-a", endpoint="ep2") == 1
    replay = keys.webhook_replay("t2")
    [[_, [(replayed, _)]]] = await redis.xreadgroup(keys.WEBHOOK_GROUP, "dispatcher", {replay: ">"})
    done.append(Finished("t2", replay, replayed, "delivered"))

    finishing = FinishQueue(outbox)
    await asyncio.gather(*(finishing.finish(d) for d in done))
    for ws in WORKSPACES:
        assert await _pending(redis, keys.events(ws)) == 0 and not await redis.exists(keys.webhook_attempts(ws))
    assert await redis.xlen(queue) == 0 and await redis.xlen(replay) == 0  # queues lose settled entries
    assert await redis.xlen(keys.events("t2")) == 3  # event streams keep theirs
    assert await redis.hgetall(keys.webhook_stats()) == {"delivered": "10", "failed": "2"}

    policy = await outbox.set_policy("acme", {"max_attempts": 3, "base_delay_s": 0.5})
    assert (policy.max_attempts, policy.base_delay_s) == (3, 0.5)


def _event(type_: str, ws: str, sid: str, data: dict[str, Any], ts: float) -> dict[str, str]:
    return {"e": orjson.dumps({"type": type_, "workspace_id": ws, "session_id": sid, "data": data,
                               "ts": ts}).decode()}


async def _metrics_scenario(redis: Any) -> None:
    """Each workspace (found through a different index) has a message accepted and sent, and a session that
    showed its first QR; the fold counts each event once, however often it runs."""
    await redis.sadd(keys.workspaces(), "t2")
    await redis.sadd(keys.cloud_workspaces(), "ws-a")
    await redis.sadd(keys.webhook_workspaces(), "acme")
    for n, ws in enumerate(WORKSPACES):
        mid = f"msg_{n:016x}"
        await redis.hset(keys.message(ws, mid), mapping={"provider": "web", "created_at": "100.0"})
        for type_, data, ts in [("session.status", {"state": "initializing"}, 100.0), ("session.qr", {}, 101.5),
                                ("message.queued", {"message_id": mid}, 100.0),
                                ("message.sent", {"message_id": mid, "send_ms": 20}, 100.5)]:
            await redis.xadd(keys.events(ws), _event(type_, ws, "s1", data, ts))
    store = MetricsStore(redis)
    assert await store.fold() == 12
    assert await store.fold() == 0  # folded once
    counters = await redis.hgetall(keys.metrics_counters())
    assert counters["msg|sent|web"] == "3" and counters["msg|queued|web"] == "3"  # the provider, from the record
    hist = await store.histograms()
    assert hist["qr_generation_seconds"].count == 3 and hist["qr_generation_seconds"].sum == pytest.approx(4.5)
    assert hist["send_latency_seconds"].count == 3 and hist["send_latency_seconds"].sum == pytest.approx(1.5)
    assert set(await redis.hkeys(keys.metrics_cursor())) == set(WORKSPACES)
    snapshot = await store.snapshot()
    assert snapshot.messages[("sent", "web")] == 3


async def _rate_limit_scenario(redis: Any, limiter: RateLimiter) -> None:
    for key_id in KEY_IDS:
        fresh, verdict = await limiter.nonce_and_check(key_id, "n" * 16, 600, 1.0, 2)
        assert fresh and verdict.allowed
        fresh, _ = await limiter.nonce_and_check(key_id, "n" * 16, 600, 1.0, 2)
        assert not fresh  # replayed
        assert (await limiter.check_key(key_id, 1.0, 2)).allowed  # a token of the key: the second of the burst
        assert not (await limiter.check_key(key_id, 1.0, 2)).allowed
        assert await redis.exists(keys.nonce(key_id, "n" * 16), keys.key_rate_limit(key_id)) == 2
    assert (await limiter.check("token:jti-1", 1.0, 1)).allowed
    assert not (await limiter.check("token:jti-1", 1.0, 1)).allowed


async def _stream_slots_scenario(redis: Any) -> None:
    slots = StreamSlots(redis)
    for key_id in KEY_IDS:
        leases = [await slots.acquire([Slot(key_id, 2, token_id="jti-a"), Slot(key_id, 3)]) for _ in range(2)]
        with pytest.raises(SlotsFull) as full:
            await slots.acquire([Slot(key_id, 2, token_id="jti-a"), Slot(key_id, 3)])
        assert (full.value.slot.per, full.value.slot.cap) == ("token", 2)
        leases.append(await slots.acquire([Slot(key_id, 2, token_id="jti-b"), Slot(key_id, 3)]))
        with pytest.raises(SlotsFull) as full:  # another token of the key: its own slots, not the key's
            await slots.acquire([Slot(key_id, 2, token_id="jti-c"), Slot(key_id, 3)])
        assert (full.value.slot.per, full.value.slot.cap) == ("key", 3)
        assert await slots.count(Slot(key_id)) == 3 and await slots.count(Slot(key_id, token_id="jti-a")) == 2
        for lease in leases:
            await slots.renew(lease)
            await slots.release(lease)
        assert await slots.count(Slot(key_id)) == 0
    cli = await slots.acquire([Slot("-", 1, token_id="jti-cli")])  # a token of the operator's CLI: no key cap
    assert await slots.count(Slot("-", token_id="jti-cli")) == 1
    await slots.release(cli)
    with pytest.raises(ValueError):
        await slots.acquire([Slot("kc", 1, token_id="jti-a"), Slot("kb", 1)])  # two keys: never one lease


# --- on the embedded Redis, every command recorded --------------------------------------------------------


async def test_outbox_scripts_and_transactions_are_single_slot(redis: aioredis.Redis, spy: SlotSpy) -> None:
    await _outbox_scenario(redis)
    spy.assert_single_slot()
    finishing = [(kind, [args for args in commands if str(args[0]).upper() == "EVALSHA"])
                 for kind, commands in spy.units
                 if any(str(args[0]).upper() == "EVALSHA" and str(args[3]).endswith(":webhook-attempts")
                        for args in commands)]
    # one script per workspace, all three in one pipeline (sent again, once loaded, when the server lacked it)
    assert finishing and {kind for kind, _ in finishing} == {"pipeline"} and len(finishing[0][1]) == 3
    assert not spy.transactions()[:-1]  # no transaction but the policy's (one key)


async def test_metrics_fold_transactions_hold_only_metrics_keys(redis: aioredis.Redis, spy: SlotSpy) -> None:
    await _metrics_scenario(redis)
    spy.assert_single_slot()
    folds = [t for t in spy.transactions() if any(str(args[0]).upper() == "WATCH" for args in t)]
    assert folds and all(key_slot(n.encode()) == key_slot(keys.metrics_cursor().encode())
                         for t in folds for args in t for n in _keys_of(args))
    names = [str(args[0]).upper() for _, commands in spy.units for args in commands]
    assert "SUNION" not in names and names.count("SMEMBERS") >= 4


async def test_rate_limit_scripts_are_single_slot(redis: aioredis.Redis, spy: SlotSpy) -> None:
    await _rate_limit_scenario(redis, RateLimiter(redis))
    await redis.flushdb()
    await _rate_limit_scenario(redis, RateLimiter(redis, batch=Batcher(redis)))  # the hot path's way
    spy.assert_single_slot()
    nonce_calls = [args for args in spy.scripts() if int(args[2]) == 2]
    assert len(nonce_calls) >= 4 * len(KEY_IDS)  # and one more: the first answered NOSCRIPT


async def test_stream_slot_scripts_are_single_slot(redis: aioredis.Redis, spy: SlotSpy) -> None:
    await _stream_slots_scenario(redis)
    spy.assert_single_slot()
    assert any(int(args[2]) == 2 for args in spy.scripts())  # a key and a token in one script


async def test_a_token_slot_is_named_under_its_issuing_key() -> None:
    for key_id in (*KEY_IDS, "-"):
        names = [Slot(key_id).redis_key, Slot(key_id, token_id="3f9c" * 8).redis_key,
                 keys.nonce(key_id, "n" * 16), keys.key_rate_limit(key_id)]
        assert len({key_slot(n.encode()) for n in names}) == 1, names


# --- on a real three-master cluster -----------------------------------------------------------------------


async def _masters(redis: Any, names: list[str]) -> int:
    """How many masters serve these keys."""
    return len({redis.get_node_from_key(n).name for n in names})


async def test_outbox_on_a_cluster(cluster_redis: Any) -> None:  # noqa: F811
    assert await _masters(cluster_redis, [keys.events(ws) for ws in WORKSPACES]) == 3
    await _outbox_scenario(cluster_redis)
    # the nodes forget the script (a restart, a failover): the group commit loads it again and acks
    outbox = Outbox(cluster_redis, RetryPolicy())
    ids = {ws: await _leased(cluster_redis, keys.events(ws), 2, ws) for ws in WORKSPACES}
    await cluster_redis.script_flush()
    results = await outbox.finish_many([Finished(ws, keys.events(ws), i, "delivered")
                                        for ws in WORKSPACES for i in ids[ws]])
    assert results == [None] * 6
    for ws in WORKSPACES:
        assert await _pending(cluster_redis, keys.events(ws)) == 0


async def test_metrics_fold_on_a_cluster(cluster_redis: Any) -> None:  # noqa: F811
    await _metrics_scenario(cluster_redis)


async def test_rate_limits_on_a_cluster(cluster_redis: Any) -> None:  # noqa: F811
    assert await _masters(cluster_redis, [keys.key_rate_limit(k) for k in KEY_IDS]) == 3
    await _rate_limit_scenario(cluster_redis, RateLimiter(cluster_redis))
    await cluster_redis.flushall()
    await cluster_redis.script_flush()  # the hot path's Batcher is a cluster pipeline: NOSCRIPT is recovered
    await _rate_limit_scenario(cluster_redis, RateLimiter(cluster_redis, batch=Batcher(cluster_redis)))


async def test_stream_slots_on_a_cluster(cluster_redis: Any) -> None:  # noqa: F811
    assert await _masters(cluster_redis, [Slot(k).redis_key for k in KEY_IDS]) == 3
    await _stream_slots_scenario(cluster_redis)
