"""One consumer of Redis streams through a consumer group: lease, reclaim, ack, and a typed outcome.

Our stream consumers (the SessionSender of each session, the CloudSender, the WebhookDispatcher) share
this mechanism and differ only in what they read, how many entries they carry at once and what handling
an entry means. `StreamConsumer` is the mechanism and the contract (`handle` answers an `Outcome`);
`ConcurrentConsumer` adds the loop of the consumers that carry many entries at once over a set of streams
that grows as workspaces appear.

Invariants:

* an entry is acknowledged only once its handler answered a final outcome; `LATER`, an exception or a
  crash leaves it in this consumer's pending list, so it is handled again, by this consumer or by
  whoever reclaims it;
* a consumer takes over entries other consumers read and never acknowledged only by `reclaim`
  (XAUTOCLAIM), and only those idle at least the threshold given: a live consumer re-reads its own
  pending entries (`held`), which keeps them from going idle;
* reading one's own pending list (`held`) never takes anything from anyone else;
* whatever a lease took is returned to the caller, or stays in this consumer's pending list when the read
  failed, and a `ConcurrentConsumer` takes such a lane up again (adoption) before reading it anew.

On a Redis Cluster one XREADGROUP may only name streams of one hash slot (one workspace: storage/keys.py), so
a lease over several slots reads each slot's streams with its own non-blocking XREADGROUP, all in one
non-transactional pipeline (one round trip per node), and waits for new entries through a `StreamWatch`
(one blocking XREAD per slot, which leases nothing). It never races blocking XREADGROUPs and cancels the
losers: a cancelled XREADGROUP answered by Redis has still leased its entries, to a caller that is gone.
On a single Redis slots do not matter, and one blocking XREADGROUP over every stream stays the cheapest
wait: one connection, one round trip, woken the moment an entry comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis

from wa_ray.storage.redis_client import RedisClient, is_cluster_client
from wa_ray.storage.slots import by_slot
from wa_ray.storage.stream_watch import StreamWatch
from wa_ray.tasks import background

log = logging.getLogger(__name__)

RECLAIM_PAGE = 100
HELD_PAGE = 500


class Outcome(Enum):
    """What handling an entry came to; every outcome but LATER acknowledges the entry."""

    DONE = "done"  # handled
    FAILED = "failed"  # given up on; the handler recorded why
    DROPPED = "dropped"  # nothing to handle: the entry was trimmed or deleted, or carries nothing
    LATER = "later"  # not settled yet: stays pending to this consumer and is handled again

    @property
    def final(self) -> bool:
        return self is not Outcome.LATER


@dataclass(frozen=True)
class Entry:
    stream: str
    id: str
    fields: dict[str, str]  # empty when the entry was deleted while pending


def entries_of(reply: Any) -> list[Entry]:
    """XREADGROUP's reply as entries, in the order Redis gave them."""
    return [Entry(stream, entry_id, fields or {}) for stream, items in reply or [] for entry_id, fields in items]


async def ensure_group(redis: RedisClient, stream: str, group: str, start: str = "0") -> None:
    """`group` on `stream` (the stream created if need be), reading from `start`; one that exists is kept as
    it is (its position included)."""
    try:
        await redis.xgroup_create(stream, group, id=start, mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class StreamConsumer:
    """A consumer named `name` in `group`: what it leases stays its own until acknowledged or reclaimed.

    Subclasses implement `handle`, and override `ack` when acknowledging does more than XACK (and XDEL
    for a queue, whose stream holds only what is still to be done)."""

    def __init__(self, redis: RedisClient, group: str, name: str, *, delete_on_ack: bool) -> None:
        self._redis = redis
        self.group = group
        self.name = name
        self._delete_on_ack = delete_on_ack
        # a lease over several slots of a cluster waits on these; made at the first such lease
        self._watch: StreamWatch | None = None
        self._watching: set[str] = set()
        self._woken = asyncio.Event()
        self._quiet_over: frozenset[str] | None = None  # the streams of the last lease that found nothing at all

    async def handle(self, entry: Entry) -> Outcome:
        raise NotImplementedError

    async def join(self, streams: Iterable[str], start: str = "0") -> None:
        """The group on each stream (created with the stream if need be), reading from `start`."""
        for stream in streams:
            await ensure_group(self._redis, stream, self.group, start)

    async def lease(self, streams: Sequence[str], count: int, block_ms: int | None = None) -> list[Entry]:
        """New entries (at most `count` per stream), now this consumer's until acknowledged; waits up to
        `block_ms` for one if given."""
        groups = by_slot(streams) if is_cluster_client(self._redis) else [list(streams)]
        if len(groups) <= 1:
            self._quiet_over = None
            if self._watching:  # the watch of an earlier lease over several slots has nothing to say now
                await self._watch_only([])
            reply = await self._redis.xreadgroup(self.group, self.name, {s: ">" for s in streams}, count=count,
                                                 block=block_ms)
            return entries_of(reply)
        if block_ms is None:
            self._quiet_over = None
            return await self._lease_each(groups, count)
        await self._watch_only(streams)
        wanted = frozenset(streams)
        if self._quiet_over != wanted:
            self._woken.clear()  # before reading: an entry added from here on sets it again
            if entries := await self._lease_each(groups, count):
                self._quiet_over = None
                return entries
        # Quiet (the last lease over these very streams read nothing and then waited out its block without a
        # wake): the reads are skipped, since nothing can have come that did not set `_woken`, which is
        # cleared only before a read. An idle consumer then costs the watch's reads alone, not also one
        # XREADGROUP per slot each block period.
        try:
            async with asyncio.timeout(block_ms / 1000):
                await self._woken.wait()
        except TimeoutError:
            self._quiet_over = wanted
            return []
        self._quiet_over = None
        return await self._lease_each(groups, count)

    async def _lease_each(self, groups: list[list[str]], count: int) -> list[Entry]:
        """One non-blocking XREADGROUP per group of one slot, in one pipeline. A failed read raises its error
        only when no other read leased anything: what they leased is the caller's now and must reach it (it
        would otherwise sit in this consumer's pending list); the failed one is read again next time."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.xreadgroup(self.group, self.name, {s: ">" for s in group}, count=count)
            replies = await pipe.execute(raise_on_error=False)
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        entries = [entry for reply in replies if not isinstance(reply, Exception) for entry in entries_of(reply)]
        if errors and not entries:
            raise errors[0]
        for error in errors:
            log.warning("%s: one slot's read failed, the others' entries go on: %s", self.name, error)
        return entries

    async def _watch_only(self, streams: Sequence[str]) -> None:
        """The watch follows exactly the streams leased now (a lane held back wakes nobody)."""
        if self._watch is None:
            self._watch = StreamWatch(self._redis)
        wanted = set(streams)
        if gone := self._watching - wanted:
            self._watch.unwatch(sorted(gone), self._woken)
        if new := [s for s in streams if s not in self._watching]:
            self._quiet_over = None  # a stream newly watched may hold entries from before: read it first
            await self._watch.watch(new, self._woken)
        self._watching = wanted

    async def close(self) -> None:
        """Stop the watch a lease over several slots started (its reads end by themselves otherwise only once
        nothing is watched)."""
        if self._watch is not None:
            await self._watch.close()
            self._watch, self._watching = None, set()

    async def held(self, streams: Sequence[str], count: int, after: str = "0") -> list[list[Entry]]:
        """This consumer's own unacknowledged entries, after `after`, one list per stream (one round trip).
        One XREADGROUP per stream: on a cluster the pipeline sends each to its node, whatever the slots."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xreadgroup(self.group, self.name, {stream: after}, count=count)
            replies = await pipe.execute()
        return [entries_of(reply) for reply in replies]

    async def held_all(self, stream: str) -> list[Entry]:
        """Every entry of `stream` this consumer holds unacknowledged, oldest first."""
        entries: list[Entry] = []
        after = "0"
        while page := (await self.held([stream], HELD_PAGE, after))[0]:
            entries += page
            after = page[-1].id
        return entries

    async def reclaim(self, stream: str, min_idle_ms: int) -> list[Entry]:
        """XAUTOCLAIM what other consumers read and never acknowledged (idle at least `min_idle_ms`), then drop
        the consumers left with nothing pending, so a dead consumer's name does not linger in the group.

        An entry deleted while pending is claimed too but, on Redis 6.2, comes back without its id: it is
        not returned here, and `held` shows it (with empty fields) so it can be acknowledged."""
        claimed: list[Entry] = []
        start = "0-0"
        while True:
            start, page = (await self._redis.xautoclaim(stream, self.group, self.name, min_idle_ms,
                                                        start_id=start, count=RECLAIM_PAGE))[:2]
            claimed += [Entry(stream, entry_id, fields or {}) for entry_id, fields in page if entry_id is not None]
            if start == "0-0" or not page:
                break
        for other in await self._redis.xinfo_consumers(stream, self.group):
            if other["name"] != self.name and int(other["pending"]) == 0:
                await self._redis.xgroup_delconsumer(stream, self.group, other["name"])
        return claimed

    async def reclaim_any(self, streams: Sequence[str], min_idle_ms: int) -> bool:
        """`reclaim` over `streams`, in one round trip when nobody left anything (the usual case of a
        periodic sweep). True when anything moved into this consumer's pending list, deleted entries
        included (Redis 7 reports those apart and drops them from the pending list)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xautoclaim(stream, self.group, self.name, min_idle_ms, start_id="0-0", count=RECLAIM_PAGE)
            replies = await pipe.execute()
        moved = False
        for stream, reply in zip(streams, replies):
            cursor, page, deleted = reply[0], reply[1], reply[2] if len(reply) > 2 else []
            if page or deleted or cursor != "0-0":
                moved = True
                await self.reclaim(stream, min_idle_ms)  # the rest of the pages, and the dead consumer's name
        return moved

    async def ack(self, entry: Entry, outcome: Outcome) -> None:
        """Acknowledge a settled entry (`outcome` is final)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(entry.stream, self.group, entry.id)
            if self._delete_on_ack:
                pipe.xdel(entry.stream, entry.id)
            await pipe.execute()

    async def settle(self, entry: Entry, outcome: Outcome) -> Outcome:
        """Acknowledge the entry when the outcome is final; a LATER one stays pending."""
        if outcome.final:
            await self.ack(entry, outcome)
        return outcome


@dataclass(frozen=True)
class Pacing:
    """How a ConcurrentConsumer reads and retries."""

    read_count: int  # entries per lease
    block_ms: int = 1000  # a lease waits this long for a new entry
    retry_later_s: float = 0.5  # after LATER, before handling the entry again
    error_pause_s: float = 1.0  # after a handler's exception, before the retry (then retry_later_s too)
    idle_s: float = 0.5  # no lane at all: wait before looking again
    saturated_s: float = 0.2  # every lane at its limit: wait before looking again


class ConcurrentConsumer(StreamConsumer):
    """Many entries in flight, over lanes (a workspace's streams) that appear as the service runs.

    A lane seen for the first time is adopted: its groups joined and its pending entries (an earlier
    incarnation's, after a restart) taken up; then new entries are leased and each is carried in a task
    of its own until a final outcome, LATER and exceptions trying again after a pause. An entry already
    in flight (same `flight_key`) is not started twice. `max_in_flight` bounds the tasks of the whole
    consumer (reading waits for a free slot); `readable` lets a subclass hold a lane back."""

    def __init__(self, redis: RedisClient, group: str, name: str, *, delete_on_ack: bool, pacing: Pacing,
                 max_in_flight: int | None = None) -> None:
        super().__init__(redis, group, name, delete_on_ack=delete_on_ack)
        self._pacing = pacing
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._flights: dict[str, set[str]] = {}  # lane -> flight keys in flight
        self.adopted: set[str] = set()

    # ------------------------------------------------------ what subclasses say
    async def lanes(self) -> dict[str, list[str]]:
        """Each lane to read now, with its streams in priority order."""
        raise NotImplementedError

    async def adopt(self, lane: str, streams: list[str]) -> list[Entry]:
        """First sight of a lane: join its streams and take what earlier consumers left unacknowledged
        (reclaimed into this consumer's pending list, then read from there)."""
        await self.join(streams)
        for stream in streams:
            await self.reclaim(stream, 0)
        return [entry for stream in streams for entry in await self.held_all(stream)]

    def readable(self, lane: str) -> bool:
        return True

    def order(self, entries: list[Entry]) -> list[Entry]:
        return entries

    def lane_of(self, entry: Entry) -> str:
        """The lane whose in-flight count the entry counts against (see `in_flight`); one for all by default."""
        return ""

    def flight_key(self, entry: Entry) -> str:
        return entry.id

    # ---------------------------------------------------------------- the loop
    def in_flight(self, lane: str | None = None) -> int:
        if lane is not None:
            return len(self._flights.get(lane, ()))
        return sum(len(keys) for keys in self._flights.values())

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._round()
                except Exception:
                    log.exception("stream consumer %s: loop failed; retrying", self.name)
                    await asyncio.sleep(1)
        finally:
            await self.close()

    async def _round(self) -> None:
        lanes = await self.lanes()
        for lane in sorted(set(lanes) - self.adopted):
            for entry in await self.adopt(lane, lanes[lane]):
                await self.spawn(entry)
            self.adopted.add(lane)
        read = [lane for lane in sorted(lanes) if self.readable(lane)]
        streams = [stream for lane in read for stream in lanes[lane]]
        if not streams:
            await asyncio.sleep(self._pacing.saturated_s if lanes else self._pacing.idle_s)
            return
        try:
            leased = await self.lease(streams, self._pacing.read_count, self._pacing.block_ms)
        except BaseException:
            # The read may have leased entries whose reply never came (a connection lost, a cancellation):
            # they sit in this consumer's pending list, which only adoption reads. Adopt these lanes again.
            self.adopted -= set(read)
            raise
        for entry in self.order(leased):
            await self.spawn(entry)

    async def spawn(self, entry: Entry) -> None:
        """Carry the entry in a task of its own, unless it is in flight already."""
        lane, key = self.lane_of(entry), self.flight_key(entry)
        flights = self._flights.setdefault(lane, set())
        if key in flights:
            return
        if self._slots is not None:
            await self._slots.acquire()
        flights.add(key)
        background(self._carry(entry, lane, key), f"{self.name}: entry {entry.id} of {entry.stream}")

    async def _carry(self, entry: Entry, lane: str, key: str) -> None:
        try:
            while True:
                try:
                    if (await self.settle(entry, await self.handle(entry))).final:
                        return
                except Exception:  # Redis trouble or a bug: the entry is still pending, so trying again is safe
                    log.exception("%s: entry %s of %s failed; trying again", self.name, entry.id, entry.stream)
                    await asyncio.sleep(self._pacing.error_pause_s)
                await asyncio.sleep(self._pacing.retry_later_s)
        finally:
            self._flights.get(lane, set()).discard(key)
            if self._slots is not None:
                self._slots.release()
