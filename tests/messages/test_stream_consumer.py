"""The stream consumer base (storage/stream_consumer.py) on a real Redis: lease, own pending, reclaim of a
dead consumer's entries, ack, every outcome, and the concurrent loop (adoption, retries, in-flight bounds)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from wa_ray.storage.stream_consumer import ConcurrentConsumer, Entry, Outcome, Pacing, StreamConsumer

GROUP = "g"
STREAM = "t:stream:ws1"


async def _pending(redis, stream: str = STREAM) -> dict[str, int]:
    """consumer -> how many entries it holds unacknowledged."""
    return {c["name"]: int(c["pending"]) for c in await redis.xinfo_consumers(stream, GROUP)}


async def _add(redis, n: int, stream: str = STREAM) -> list[str]:
    return [await redis.xadd(stream, {"m": f"m{i}"}) for i in range(n)]


async def test_a_lease_is_the_leasers_alone(redis) -> None:
    a, b = StreamConsumer(redis, GROUP, "a", delete_on_ack=True), StreamConsumer(redis, GROUP, "b", delete_on_ack=True)
    await a.join([STREAM])
    ids = await _add(redis, 3)
    leased = await a.lease([STREAM], count=10)
    assert [e.id for e in leased] == ids and leased[0] == Entry(STREAM, ids[0], {"m": "m0"})
    assert await b.lease([STREAM], count=10) == [], "a leased entry is not leased again"
    [held_a] = await a.held([STREAM], count=10)
    [held_b] = await b.held([STREAM], count=10)
    assert [e.id for e in held_a] == ids and held_b == []
    assert (await a.held([STREAM], count=10, after=ids[0]))[0] == leased[1:]


async def test_join_twice_is_harmless_and_a_group_reads_from_its_start(redis) -> None:
    before = await _add(redis, 2)
    consumer = StreamConsumer(redis, GROUP, "a", delete_on_ack=False)
    await consumer.join([STREAM])
    await consumer.join([STREAM])
    assert [e.id for e in await consumer.lease([STREAM], count=10)] == before


async def test_lease_blocks_until_an_entry_comes(redis) -> None:
    consumer = StreamConsumer(redis, GROUP, "a", delete_on_ack=True)
    await consumer.join([STREAM])
    started = time.monotonic()
    assert await consumer.lease([STREAM], count=1, block_ms=300) == []
    assert time.monotonic() - started >= 0.25
    waiting = asyncio.create_task(consumer.lease([STREAM], count=1, block_ms=5000))
    await asyncio.sleep(0.1)
    [entry_id] = await _add(redis, 1)
    assert [e.id for e in await asyncio.wait_for(waiting, 3)] == [entry_id]


@pytest.mark.parametrize("outcome", [Outcome.DONE, Outcome.FAILED, Outcome.DROPPED])
async def test_a_final_outcome_acks_and_a_queue_forgets_the_entry(redis, outcome: Outcome) -> None:
    queue = StreamConsumer(redis, GROUP, "q", delete_on_ack=True)
    await queue.join([STREAM])
    await _add(redis, 1)
    [entry] = await queue.lease([STREAM], count=1)
    assert await queue.settle(entry, outcome) is outcome
    assert await _pending(redis) == {"q": 0}
    assert await redis.xlen(STREAM) == 0, "a queue stream holds only what is still to be done"


async def test_ack_without_delete_keeps_the_entry_in_the_stream(redis) -> None:
    log = StreamConsumer(redis, GROUP, "d", delete_on_ack=False)
    await log.join([STREAM])
    await _add(redis, 1)
    [entry] = await log.lease([STREAM], count=1)
    await log.settle(entry, Outcome.DONE)
    assert await _pending(redis) == {"d": 0} and await redis.xlen(STREAM) == 1


async def test_later_leaves_the_entry_pending_to_its_consumer(redis) -> None:
    consumer = StreamConsumer(redis, GROUP, "a", delete_on_ack=True)
    await consumer.join([STREAM])
    await _add(redis, 1)
    [entry] = await consumer.lease([STREAM], count=1)
    assert await consumer.settle(entry, Outcome.LATER) is Outcome.LATER
    assert await _pending(redis) == {"a": 1}
    assert (await consumer.held([STREAM], count=1))[0] == [entry]
    assert not Outcome.LATER.final and all(o.final for o in Outcome if o is not Outcome.LATER)


async def test_reclaim_takes_a_dead_consumers_idle_entries_and_drops_its_name(redis) -> None:
    dead = StreamConsumer(redis, GROUP, "dead", delete_on_ack=True)
    heir = StreamConsumer(redis, GROUP, "heir", delete_on_ack=True)
    await dead.join([STREAM])
    ids = await _add(redis, 3)
    assert len(await dead.lease([STREAM], count=3)) == 3
    assert await heir.reclaim(STREAM, min_idle_ms=60_000) == [], "not idle long enough: left to its owner"
    assert (await _pending(redis))["dead"] == 3
    await asyncio.sleep(0.25)
    claimed = await heir.reclaim(STREAM, min_idle_ms=200)
    assert [e.id for e in claimed] == ids and claimed[2].fields == {"m": "m2"}
    assert await _pending(redis) == {"heir": 3}, "the dead consumer, left with nothing, leaves the group"
    [held] = await heir.held([STREAM], count=10)
    assert [e.id for e in held] == ids


async def test_reclaim_pages_through_many_entries(redis) -> None:
    dead = StreamConsumer(redis, GROUP, "dead", delete_on_ack=True)
    heir = StreamConsumer(redis, GROUP, "heir", delete_on_ack=True)
    await dead.join([STREAM])
    ids = await _add(redis, 250)
    await dead.lease([STREAM], count=250)
    assert [e.id for e in await heir.reclaim(STREAM, 0)] == ids


async def test_a_reclaimed_entry_deleted_while_pending_is_held_empty(redis) -> None:
    dead = StreamConsumer(redis, GROUP, "dead", delete_on_ack=True)
    heir = StreamConsumer(redis, GROUP, "heir", delete_on_ack=True)
    await dead.join([STREAM])
    gone, kept = await _add(redis, 2)
    await dead.lease([STREAM], count=2)
    await redis.xdel(STREAM, gone)
    assert [e.id for e in await heir.reclaim(STREAM, 0)] == [kept]
    assert await heir.held_all(STREAM) == [Entry(STREAM, gone, {}), Entry(STREAM, kept, {"m": "m1"})]


async def test_an_entry_deleted_while_pending_comes_back_empty(redis) -> None:
    consumer = StreamConsumer(redis, GROUP, "a", delete_on_ack=True)
    await consumer.join([STREAM])
    [entry_id] = await _add(redis, 1)
    await consumer.lease([STREAM], count=1)
    await redis.xdel(STREAM, entry_id)
    [[entry]] = await consumer.held([STREAM], count=1)
    assert entry == Entry(STREAM, entry_id, {})


class Scripted(ConcurrentConsumer):
    """Answers per message as its script says (an exception class raises it), then DONE."""

    def __init__(self, redis, name: str, script: dict[str, list[object]], lanes: dict[str, list[str]],
                 max_in_flight: int | None = None, per_lane: int | None = None, hold: asyncio.Event | None = None,
                 read_count: int = 50):
        super().__init__(redis, GROUP, name, delete_on_ack=True, max_in_flight=max_in_flight,
                         pacing=Pacing(read_count=read_count, block_ms=100, retry_later_s=0.01, error_pause_s=0.01,
                                       idle_s=0.01, saturated_s=0.01))
        self.script = script
        self._lanes = lanes
        self.per_lane = per_lane
        self.hold = hold
        self.calls: Counter[str] = Counter()
        self.peak = 0

    async def lanes(self) -> dict[str, list[str]]:
        return self._lanes

    def readable(self, lane: str) -> bool:
        return self.per_lane is None or self.in_flight(lane) < self.per_lane

    def lane_of(self, entry: Entry) -> str:
        return entry.stream.rsplit(":", 1)[1]

    def flight_key(self, entry: Entry) -> str:
        return entry.fields.get("m") or entry.id

    async def handle(self, entry: Entry) -> Outcome:
        self.peak = max(self.peak, self.in_flight())
        message = entry.fields.get("m")
        if message is None:
            return Outcome.DROPPED
        self.calls[message] += 1
        if self.hold is not None:
            await self.hold.wait()
        answers = self.script.get(message, [])
        answer = answers.pop(0) if answers else Outcome.DONE
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("scripted")
        assert isinstance(answer, Outcome)
        return answer


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


async def _drained(redis, stream: str = STREAM) -> bool:
    return await redis.xlen(stream) == 0


async def test_the_loop_retries_later_and_errors_until_a_final_outcome(redis) -> None:
    await _add(redis, 3)
    consumer = Scripted(redis, "c1", {"m0": [Outcome.LATER, Outcome.LATER], "m1": [RuntimeError], "m2": [Outcome.FAILED]},
                        {"ws1": [STREAM]})
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: _drained(redis))
        assert consumer.adopted == {"ws1"}  # (a cancelled lease gives the lane up for the next adoption)
    finally:
        await _stop(task)
    assert consumer.calls == {"m0": 3, "m1": 2, "m2": 1}
    assert consumer.in_flight() == 0


async def test_a_new_incarnation_adopts_what_a_dead_one_left(redis) -> None:
    dead = StreamConsumer(redis, GROUP, "old", delete_on_ack=True)
    await dead.join([STREAM])
    await _add(redis, 2)
    await dead.lease([STREAM], count=2)  # read, never acknowledged: the incarnation died
    consumer = Scripted(redis, "new", {}, {"ws1": [STREAM]})
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: _drained(redis))
    finally:
        await _stop(task)
    assert consumer.calls == {"m0": 1, "m1": 1}
    assert await _pending(redis) == {"new": 0}


async def test_a_trimmed_entry_is_dropped_and_acknowledged(redis) -> None:
    dead = StreamConsumer(redis, GROUP, "old", delete_on_ack=True)
    await dead.join([STREAM])
    [entry_id] = await _add(redis, 1)
    await dead.lease([STREAM], count=1)
    await redis.xdel(STREAM, entry_id)
    consumer = Scripted(redis, "new", {}, {"ws1": [STREAM]})
    task = asyncio.create_task(consumer.run())
    try:
        async def nothing_pending() -> bool:
            return not any((await _pending(redis)).values())
        await _until(nothing_pending)
    finally:
        await _stop(task)
    assert consumer.calls == {}


async def test_in_flight_bounds_hold_per_consumer_and_per_lane(redis) -> None:
    other = "t:stream:ws2"
    await _add(redis, 6)
    await _add(redis, 6, other)
    hold = asyncio.Event()
    # as the dispatcher reads: a lease takes at most the lane's limit from each stream, and a full lane is not read
    consumer = Scripted(redis, "c", {}, {"ws1": [STREAM], "ws2": [other]}, per_lane=2, hold=hold, read_count=2)
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: _true(consumer.in_flight() == 4))
        await asyncio.sleep(0.3)
        assert consumer.in_flight("ws1") == 2 and consumer.in_flight("ws2") == 2, "a full lane is not read"
        assert await redis.xlen(STREAM) == 6 and await redis.xlen(other) == 6
        hold.set()
        await _until(lambda: _both_drained(redis, other))
    finally:
        await _stop(task)

    await _add(redis, 5)
    hold = asyncio.Event()
    bounded = Scripted(redis, "b", {}, {"ws1": [STREAM]}, max_in_flight=2, hold=hold)
    task = asyncio.create_task(bounded.run())
    try:
        await _until(lambda: _true(bounded.in_flight() == 2))
        await asyncio.sleep(0.3)
        assert bounded.in_flight() == 2, "never more than max_in_flight at once"
        hold.set()
        await _until(lambda: _drained(redis))
    finally:
        await _stop(task)
    assert bounded.peak <= 2


async def test_an_entry_in_flight_is_not_started_twice(redis) -> None:
    await redis.xadd(STREAM, {"m": "same"})
    await redis.xadd(STREAM, {"m": "same"})
    hold = asyncio.Event()
    consumer = Scripted(redis, "c", {}, {"ws1": [STREAM]}, hold=hold)
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: _true(consumer.calls["same"] == 1))
        await asyncio.sleep(0.3)
        assert consumer.in_flight() == 1 and consumer.calls["same"] == 1
        hold.set()
        await _until(lambda: _true(consumer.in_flight() == 0))
    finally:
        await _stop(task)
    assert await _pending(redis) == {"c": 1}, "the duplicate stays pending, for the next adoption"


async def _stop(task: asyncio.Task) -> None:
    """Cancel a consumer's loop until it has ended. The event loop is the session's: a loop left running goes
    on reading the next test's entries of the same stream and group, and a consumer of the same name there
    (most are "c") also reads what that test's consumer holds. Seen once in CI: the next test's consumer leased
    two entries and found them handled by someone else. A single cancel can be lost (Python 3.11's wait_for,
    used under redis-py's commands, may return a result that came at the same moment and drop the cancel; see
    tests/messages/test_sender_heartbeat.py), so it is repeated until the task is done."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1)


async def _true(value: bool) -> bool:
    return value


async def _both_drained(redis, other: str) -> bool:
    return await _drained(redis) and await _drained(redis, other)


class LostReply(Scripted):
    """Its first lease takes the entries and then fails, as a read whose reply never came."""

    lost = False

    async def lease(self, streams, count, block_ms=None):
        leased = await super().lease(streams, count, block_ms)
        if leased and not self.lost:
            self.lost = True
            raise ConnectionError("the reply never came")
        return leased


async def test_what_a_failed_lease_took_is_handled_after_the_lane_is_adopted_again(redis) -> None:
    consumer = LostReply(redis, "c", {}, {"ws1": [STREAM]})
    await consumer.join([STREAM])
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: _true("ws1" in consumer.adopted))
        await _add(redis, 2)
        await _until(lambda: _drained(redis))
    finally:
        await _stop(task)
    assert consumer.lost and consumer.calls == {"m0": 1, "m1": 1}
    assert await _pending(redis) == {"c": 0}
