"""StreamWatch (storage/stream_watch.py) against a real Redis: one blocking read wakes the right waiter,
never misses an entry added after `watch()`, and costs one read per block period however many streams
it watches."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from wa_ray.storage.stream_watch import StreamWatch

BLOCK_MS = 200


async def _woken(event: asyncio.Event, within_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), within_s)
        return True
    except TimeoutError:
        return False


async def _streams(redis: aioredis.Redis, names: list[str]) -> None:
    for name in names:  # streams exist before they are watched (the senders join their groups first)
        await redis.xgroup_create(name, "g", id="0", mkstream=True)


async def test_an_entry_wakes_its_waiter_and_no_other(redis: aioredis.Redis) -> None:
    await _streams(redis, ["q:a", "q:b"])
    watch = StreamWatch(redis, block_ms=BLOCK_MS)
    a, b = asyncio.Event(), asyncio.Event()
    await watch.watch(["q:a"], a)
    await watch.watch(["q:b"], b)
    try:
        await redis.xadd("q:a", {"m": "1"})
        assert await _woken(a, 2)
        assert not b.is_set()
        a.clear()
        await redis.xadd("q:b", {"m": "2"})
        assert await _woken(b, 2)
        assert not a.is_set()
    finally:
        await watch.close()


async def test_what_was_queued_before_watch_does_not_wake_but_everything_after_does(redis: aioredis.Redis) -> None:
    await _streams(redis, ["q:old"])
    for i in range(3):
        await redis.xadd("q:old", {"m": str(i)})
    watch = StreamWatch(redis, block_ms=BLOCK_MS)
    wake = asyncio.Event()
    await watch.watch(["q:old"], wake)
    try:
        assert not await _woken(wake, BLOCK_MS * 3 / 1000), "the backlog is the waiter's own first read"
        await redis.xadd("q:old", {"m": "new"})
        assert await _woken(wake, 2)
    finally:
        await watch.close()


async def test_a_stream_watched_while_a_read_blocks_misses_nothing(redis: aioredis.Redis) -> None:
    await _streams(redis, ["q:first", "q:late"])
    watch = StreamWatch(redis, block_ms=1000)
    first, late = asyncio.Event(), asyncio.Event()
    await watch.watch(["q:first"], first)
    await asyncio.sleep(0.1)  # the read over q:first alone is blocked now
    await watch.watch(["q:late"], late)
    await redis.xadd("q:late", {"m": "x"})  # added while the read in flight does not cover q:late
    try:
        assert await _woken(late, 3), "the next read starts from the cursor set at watch()"
    finally:
        await watch.close()


async def test_a_stale_unwatch_leaves_the_next_waiter_watched(redis: aioredis.Redis) -> None:
    await _streams(redis, ["q:s"])
    watch = StreamWatch(redis, block_ms=BLOCK_MS)
    old, new = asyncio.Event(), asyncio.Event()
    await watch.watch(["q:s"], old)
    await watch.watch(["q:s"], new)  # the session's next sender, before the old one's loop has ended
    watch.unwatch(["q:s"], old)
    try:
        await redis.xadd("q:s", {"m": "1"})
        assert await _woken(new, 2)
        assert not old.is_set()
    finally:
        await watch.close()


async def test_many_streams_cost_one_read_per_block_and_the_loop_ends_when_nothing_is_watched(
        redis: aioredis.Redis) -> None:
    names = [f"q:{i}:{p}" for i in range(50) for p in ("urgent", "high", "normal", "bulk")]
    await _streams(redis, names)
    watch = StreamWatch(redis, block_ms=BLOCK_MS)
    events = [asyncio.Event() for _ in range(50)]
    for i, event in enumerate(events):
        await watch.watch(names[i * 4:i * 4 + 4], event)
    await asyncio.sleep(0.05)
    before = watch.reads
    await asyncio.sleep(BLOCK_MS * 5 / 1000)
    assert watch.reads - before <= 6, f"{watch.reads - before} reads in 5 block periods for 200 idle streams"
    await redis.xadd(names[4 * 37 + 3], {"m": "bulk"})
    assert await _woken(events[37], 2)
    assert [i for i, e in enumerate(events) if e.is_set()] == [37]
    for i, event in enumerate(events):
        watch.unwatch(names[i * 4:i * 4 + 4], event)
    await asyncio.sleep(BLOCK_MS * 2 / 1000 + 0.2)
    assert watch.running == 0, "the read loop outlived its last stream"
    assert watch.watched == 0
