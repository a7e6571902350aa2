"""The storage mechanisms that read many workspaces at once, on a real 3-master Redis Cluster (tests/redis_cluster.py):
leases over streams of several slots (storage/stream_consumer.py), the watch (storage/stream_watch.py), SCAN
(storage/key_scan.py) and the command Batcher (storage/batch.py). The three workspaces live on three masters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from redis.exceptions import RedisClusterException

from tests import redis_cluster
from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.key_scan import SCAN_COUNT, scan_batches, scan_names
from wa_ray.storage.redis_client import RedisClient, connect_sync, is_cluster_client
from wa_ray.storage.slots import slot_of
from wa_ray.storage.stream_consumer import ConcurrentConsumer, Entry, Outcome, Pacing, StreamConsumer
from wa_ray.storage.stream_watch import StreamWatch

# the fixtures of tests/redis_cluster.py, bound here so pytest finds them
redis_cluster_url = redis_cluster.redis_cluster_url
cluster_redis = redis_cluster.cluster_redis

GROUP = "g"
WORKSPACES = ("t2", "ws-a", "acme")  # slots 4748, 7741, 11304: one on each master


def _queues(ws: str) -> list[str]:
    return [keys.cloud_queue(ws, p) for p in keys.PRIORITIES]


async def _pending_ids(redis: RedisClient, stream: str, consumer: str) -> list[str]:
    return [p["message_id"] for p in await redis.xpending_range(stream, GROUP, "-", "+", 1000, consumername=consumer)]


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


async def test_the_workspaces_lie_on_three_masters(cluster_redis: RedisClient) -> None:
    assert is_cluster_client(cluster_redis)
    await cluster_redis.initialize()
    nodes = {cluster_redis.get_node_from_key(keys.events(ws)).name for ws in WORKSPACES}
    assert len(nodes) == 3 == len(cluster_redis.get_primaries())
    ranges = redis_cluster.slot_ranges(3)
    assert [next(i for i, (a, b) in enumerate(ranges) if a <= slot_of(keys.events(ws)) <= b)
            for ws in WORKSPACES] == [0, 1, 2]


def test_one_listed_node_is_enough_and_the_sync_client_follows_the_url(redis_cluster_url: str) -> None:
    first_only = redis_cluster_url.split(",")[0]
    client = connect_sync(first_only)
    try:
        assert len(client.get_primaries()) == 3
        for ws in WORKSPACES:
            client.set(keys.retention(ws), ws)
        assert [client.get(keys.retention(ws)) for ws in WORKSPACES] == list(WORKSPACES)
        client.delete(*[keys.retention(ws) for ws in WORKSPACES])  # split per slot by the client
    finally:
        client.close()


async def test_a_lease_over_three_slots_returns_everything_it_took(cluster_redis: RedisClient) -> None:
    consumer = StreamConsumer(cluster_redis, GROUP, "c", delete_on_ack=True)
    streams = [s for ws in WORKSPACES for s in _queues(ws)]
    await consumer.join(streams)
    added = {s: [await cluster_redis.xadd(s, {"m": f"{s}-{i}"}) for i in range(3)] for s in streams[::2]}
    leased = await consumer.lease(streams, count=2)
    by_stream: dict[str, list[str]] = {}
    for entry in leased:
        by_stream.setdefault(entry.stream, []).append(entry.id)
    assert by_stream == {s: ids[:2] for s, ids in added.items()}, "at most `count` per stream, from every slot"
    for stream in streams:
        assert await _pending_ids(cluster_redis, stream, "c") == by_stream.get(stream, []), \
            "nothing leased that the caller did not get"
    rest = await consumer.lease(streams, count=10)
    assert sorted(e.id for e in rest) == sorted(ids[2] for ids in added.values())
    await consumer.close()


async def test_a_blocking_lease_over_three_slots_wakes_for_any_of_them(cluster_redis: RedisClient) -> None:
    consumer = StreamConsumer(cluster_redis, GROUP, "c", delete_on_ack=True)
    streams = [keys.events(ws) for ws in WORKSPACES]
    await consumer.join(streams)
    try:
        started = time.monotonic()
        assert await consumer.lease(streams, count=10, block_ms=300) == []
        assert time.monotonic() - started >= 0.25, "an empty lease waits its block period"
        for ws in WORKSPACES:
            waiting = asyncio.create_task(consumer.lease(streams, count=10, block_ms=5000))
            await asyncio.sleep(0.2)
            entry_id = await cluster_redis.xadd(keys.events(ws), {"m": ws})
            started = time.monotonic()
            assert [(e.stream, e.id) for e in await asyncio.wait_for(waiting, 3)] == [(keys.events(ws), entry_id)]
            assert time.monotonic() - started < 2.0, "woken by the entry, not by the end of the block period"
    finally:
        await consumer.close()


async def _xreadgroup_calls(redis: RedisClient) -> int:
    total = 0
    for node in redis.get_primaries():  # type: ignore[union-attr]
        stats = await redis.execute_command("INFO", "commandstats", target_nodes=node)
        total += int((stats.get("cmdstat_xreadgroup") or {}).get("calls", 0))
    return total


async def test_an_idle_lease_over_three_slots_waits_on_the_watch_without_reading_again(
        cluster_redis: RedisClient) -> None:
    consumer = StreamConsumer(cluster_redis, GROUP, "c", delete_on_ack=True)
    streams = [keys.events(ws) for ws in WORKSPACES]
    await consumer.join(streams)
    try:
        before = await _xreadgroup_calls(cluster_redis)
        for _ in range(8):  # 8 idle block periods, as a consumer's loop makes them
            assert await consumer.lease(streams, count=10, block_ms=200) == []
        idle = await _xreadgroup_calls(cluster_redis) - before
        # the first lease reads each slot once; the quiet ones after it only wait (it was 3 reads per period)
        assert idle == len(WORKSPACES), idle
        entry_id = await cluster_redis.xadd(keys.events("ws-a"), {"m": "late"})
        leased = await consumer.lease(streams, count=10, block_ms=3000)
        assert [(e.stream, e.id) for e in leased] == [(keys.events("ws-a"), entry_id)]
        # a stream joining the lease is read at once: it may hold entries from before it was watched
        early = await cluster_redis.xadd(keys.events("t3"), {"m": "early"})
        await consumer.join([keys.events("t3")])
        await consumer.lease(streams, count=10, block_ms=200)  # quiet again over the three
        grown = [*streams, keys.events("t3")]
        assert [e.id for e in await consumer.lease(grown, count=10, block_ms=200)] == [early]
    finally:
        await consumer.close()


async def test_a_slot_whose_read_fails_does_not_lose_what_the_others_leased(cluster_redis: RedisClient) -> None:
    consumer = StreamConsumer(cluster_redis, GROUP, "c", delete_on_ack=True)
    joined = [keys.events("t2"), keys.events("acme")]
    await consumer.join(joined)
    no_group = keys.events("ws-a")
    await cluster_redis.xadd(no_group, {"m": "x"})  # a stream without the group: NOGROUP
    ids = [await cluster_redis.xadd(s, {"m": s}) for s in joined]
    leased = await consumer.lease([*joined, no_group], count=10)
    assert sorted(e.id for e in leased) == sorted(ids), "the failed slot is read again next time"
    with pytest.raises(Exception, match="NOGROUP"):
        await consumer.lease([*joined, no_group], count=10)  # nothing leased: the error is the answer
    await consumer.close()


async def test_held_reads_own_pending_across_slots(cluster_redis: RedisClient) -> None:
    consumer = StreamConsumer(cluster_redis, GROUP, "c", delete_on_ack=True)
    streams = [keys.events(ws) for ws in WORKSPACES]
    await consumer.join(streams)
    ids = [await cluster_redis.xadd(s, {"m": s}) for s in streams]
    await consumer.lease(streams, count=10)
    assert [[e.id for e in entries] for entries in await consumer.held(streams, count=10)] == [[i] for i in ids]


class Counting(ConcurrentConsumer):
    """Lanes = workspaces, each with its four cloud queues; every entry DONE after an optional hold."""

    def __init__(self, redis: RedisClient, name: str, workspaces: tuple[str, ...]) -> None:
        super().__init__(redis, GROUP, name, delete_on_ack=True,
                         pacing=Pacing(read_count=10, block_ms=5000, retry_later_s=0.01, error_pause_s=0.01,
                                       idle_s=0.01, saturated_s=0.01))
        self._ws = workspaces
        self.calls: Counter[str] = Counter()

    async def lanes(self) -> dict[str, list[str]]:
        return {ws: _queues(ws) for ws in self._ws}

    def lane_of(self, entry: Entry) -> str:
        return entry.stream

    async def handle(self, entry: Entry) -> Outcome:
        self.calls[entry.fields["m"]] += 1
        return Outcome.DONE


async def test_a_concurrent_consumer_drains_lanes_on_three_masters_and_sleeps_on_the_watch(
        cluster_redis: RedisClient) -> None:
    consumer = Counting(cluster_redis, "cc", WORKSPACES)
    await consumer.join([s for ws in WORKSPACES for s in _queues(ws)])
    for ws in WORKSPACES:
        for p in keys.PRIORITIES:
            await cluster_redis.xadd(keys.cloud_queue(ws, p), {"m": f"{ws}:{p}:old"})
    task = asyncio.create_task(consumer.run())

    async def drained() -> bool:
        return all([await cluster_redis.xlen(s) == 0 for ws in WORKSPACES for s in _queues(ws)])

    try:
        await _until(drained)
        assert consumer.adopted == set(WORKSPACES)
        await asyncio.sleep(0.3)  # idle now: waiting on the watch, one blocking read per slot
        assert consumer._watch is not None and consumer._watch.running == 3
        started = time.monotonic()
        await cluster_redis.xadd(keys.cloud_queue("ws-a", "bulk"), {"m": "new"})
        await _until(lambda: _true(consumer.calls["new"] == 1), timeout=3)
        assert time.monotonic() - started < 2.0, "a new entry is handled at once, not after the block period"
        await _until(drained)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(consumer.calls.values()) == {1} and len(consumer.calls) == 13
    assert consumer._watch is None, "the loop's end stops its watch"
    for ws in WORKSPACES:
        for stream in _queues(ws):
            assert await _pending_ids(cluster_redis, stream, "cc") == []


async def _true(value: bool) -> bool:
    return value


async def test_the_watch_reads_each_slot_apart_and_wakes_only_its_waiter(cluster_redis: RedisClient) -> None:
    streams = {ws: _queues(ws) for ws in WORKSPACES}
    for names in streams.values():
        for name in names:
            await cluster_redis.xgroup_create(name, GROUP, id="0", mkstream=True)
    watch = StreamWatch(cluster_redis, block_ms=200)
    events = {ws: asyncio.Event() for ws in WORKSPACES}
    for ws in WORKSPACES:
        await watch.watch(streams[ws], events[ws])
    try:
        assert watch.running == 3 and watch.watched == 12
        await asyncio.sleep(0.1)
        for i, ws in enumerate(WORKSPACES):
            await cluster_redis.xadd(keys.cloud_queue(ws, "normal"), {"m": ws})
            await asyncio.wait_for(events[ws].wait(), 2)
            assert not any(events[later].is_set() for later in WORKSPACES[i + 1:])
        missing = keys.events("acme")  # not created yet: wakes at its first entry
        late = asyncio.Event()
        await watch.watch([missing], late)
        await asyncio.sleep(0.3)
        await cluster_redis.xadd(missing, {"m": "first"})
        await asyncio.wait_for(late.wait(), 2)
        for ws in WORKSPACES:
            watch.unwatch(streams[ws], events[ws])
        watch.unwatch([missing], late)
        await _until(lambda: _true(watch.running == 0), timeout=3)
        assert watch.watched == 0
    finally:
        await watch.close()


async def test_scan_visits_every_master_or_only_the_workspaces_node(cluster_redis: RedisClient,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    names = {ws: [keys.message(ws, f"m{i}") for i in range(SCAN_COUNT)] for ws in WORKSPACES}
    for batch in names.values():
        async with cluster_redis.pipeline(transaction=False) as pipe:
            for name in batch:
                pipe.set(name, "x")
            await pipe.execute()
    await cluster_redis.set(keys.workspaces(), "x")
    everything = await scan_names(cluster_redis, "wa:*")
    assert sorted(everything) == sorted([n for batch in names.values() for n in batch] + [keys.workspaces()])
    assert all([batch async for batch in scan_batches(cluster_redis, "wa:*")]), "no empty batch"

    asked: list[str] = []
    scan = cluster_redis.scan

    async def recording_scan(*args, **kwargs):
        asked.append(kwargs["target_nodes"].name)
        return await scan(*args, **kwargs)

    monkeypatch.setattr(cluster_redis, "scan", recording_scan)
    acme = await scan_names(cluster_redis, keys.message("acme", "*"))
    assert sorted(acme) == sorted(names["acme"])
    assert set(asked) == {cluster_redis.get_node_from_key(keys.events("acme")).name}
    asked.clear()
    assert sorted(await scan_names(cluster_redis, "wa:*:msg:m1")) == sorted(keys.message(ws, "m1")
                                                                           for ws in WORKSPACES)
    assert len(set(asked)) == 3, "a pattern without a whole tag visits every master"


async def test_the_batcher_routes_scripts_by_slot_and_refuses_a_cross_slot_one_alone(
        cluster_redis: RedisClient) -> None:
    batcher = Batcher(cluster_redis)
    one = cluster_redis.register_script("return redis.call('INCR', KEYS[1])")
    two = cluster_redis.register_script("return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])")
    counters = {ws: keys.campaign_counts(ws) for ws in WORKSPACES}
    replies = await asyncio.gather(*(one(keys=[counters[ws]], client=batcher) for ws in WORKSPACES),
                                   two(keys=[counters["t2"], counters["acme"]], client=batcher),
                                   two(keys=[keys.webhook_attempts("acme"), keys.events("acme")], client=batcher),
                                   batcher.hgetall(keys.webhook_policy("ws-a")),
                                   batcher.command("mget", counters["t2"], counters["acme"]),  # blocked on a cluster
                                   return_exceptions=True)
    assert replies[:3] == [1, 1, 1]
    assert isinstance(replies[3], RedisClusterException), "keys of two slots: refused, alone"
    assert replies[4:6] == [2, {}]
    assert isinstance(replies[6], RedisClusterException), "a command the cluster pipeline blocks: refused, alone"
    assert await batcher.command("get", counters["ws-a"]) == "1"
    await cluster_redis.script_flush()  # every primary forgets: the next calls reload (NOSCRIPT) and go on
    assert await asyncio.gather(*(one(keys=[counters[ws]], client=batcher) for ws in WORKSPACES)) == [2, 2, 2]
