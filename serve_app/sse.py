"""Server-Sent Events from the workspace's Redis stream.

SSE ids are the Redis stream ids, so `Last-Event-ID` resumes exactly: the
missed events are replayed from the stream (XRANGE after that id), then live
events follow, and an id is never sent twice on one connection.

Each replica runs one reader per workspace (`EventHub`), however many
browsers watch it: a blocking XREAD on one Redis connection, fanned out to
per-client queues. A client that disconnects leaves its queue, and a reader
with no clients left stops after `linger_s`, so connect/disconnect churn
leaves no tasks or Redis connections behind. A client too slow to keep up
(its queue full) is ended; its browser reconnects with Last-Event-ID and
catches up from Redis.

The hub turns each stream entry into one `FeedEvent` that every subscriber
shares: decoded once (not at all when no subscriber's filter names its type),
offered only to the subscribers whose filter wants it
(so a filtered-out event costs a stream no wakeup and no queue slot), and
framed at most once, however many streams send it. Replay builds the same
`FeedEvent`s, so a replayed and a live event go out as the same bytes.

A stream given an `AccessGuard` asks it every `guard.every_s` whether its
caller's access still holds, whether events are flowing or not, and ends
(after a `: access ended: <reason>` comment) when it does not; the guard is
closed when the stream ends for any reason (its slots are freed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sse_starlette import ServerSentEvent

from wa_ray.storage import keys
from wa_ray.storage.events import EventLog, decode, decode_stored, stored_type

log = logging.getLogger(__name__)

BLOCK_MS = 10_000
READ_COUNT = 500
RETRY_S = 0.5
QUEUE_MAX = 5_000
RECONNECT_MS = 2_000  # what EventSource waits before reconnecting


def stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what sse_starlette's ServerSentEvent splits and strips on


@dataclass(frozen=True, slots=True, eq=False)
class FeedEvent:
    """One stream entry as every subscriber sees it. Shared by all of them: never mutated (`envelope`
    included), but for the frame cached on the first `frame()` call."""

    id: str
    position: tuple[int, int]  # stream_id(id): ordering without parsing the id once per subscriber
    type: Any  # the envelope's, None if it has none
    session_id: Any
    envelope: dict[str, Any]  # decode()'s result: the stored event and its "id"
    _frame: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, envelope: dict[str, Any]) -> FeedEvent:
        """From what storage.events.decode returns (the one decode of this entry)."""
        event_id = envelope["id"]
        return cls(event_id, stream_id(event_id), envelope.get("type"), envelope.get("session_id"), envelope)

    def frame(self) -> bytes:
        """The event's SSE bytes: exactly ServerSentEvent(data=orjson.dumps(envelope).decode(),
        event=type, id=id).encode(), built once."""
        if self._frame is None:
            object.__setattr__(self, "_frame", _frame(self.id, self.type, orjson.dumps(self.envelope)))
        return self._frame  # type: ignore[return-value]


def _frame(event_id: Any, event_type: Any, data: bytes) -> bytes:
    # Without a line break in id, type or data, ServerSentEvent.encode() writes exactly these three lines
    # (the data is orjson's compact output, whose strings escape every control character, so in practice
    # it never has one); anything else goes through ServerSentEvent itself, so the bytes cannot differ.
    if (type(event_id) is str and type(event_type) is str and not _LINE_BREAK.search(event_id)
            and not _LINE_BREAK.search(event_type) and b"\r" not in data and b"\n" not in data):
        return f"id: {event_id}\r\nevent: {event_type}\r\ndata: ".encode() + data + b"\r\n\r\n"
    return ServerSentEvent(data=data.decode(), event=event_type, id=event_id).encode()


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events one stream sends: of `types` (all when empty) and of `session_id` (any when None)."""

    types: frozenset[str] | None = None
    session_id: str | None = None

    def wants(self, event: FeedEvent) -> bool:
        # Called by the hub's fan-out, so it must not raise: a type that is no string (never one we write)
        # is simply not among `types`.
        if self.types and not (isinstance(event.type, str) and event.type in self.types):
            return False
        return not self.session_id or event.session_id == self.session_id


@dataclass(eq=False)
class Subscriber:
    filter: EventFilter = field(default_factory=EventFilter)
    queue: asyncio.Queue[FeedEvent | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    overflowed: bool = False

    def offer(self, event: FeedEvent) -> None:
        if self.overflowed or not self.filter.wants(event):
            return  # what the stream would not send takes no slot: a client is ended only when behind on its own
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # ends this client's stream; it resumes with Last-Event-ID


@dataclass(eq=False)
class _Feed:
    ws: str
    subscribers: set[Subscriber] = field(default_factory=set)
    cursor: str | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stop_handle: asyncio.TimerHandle | None = None


class EventHub:
    def __init__(self, redis: aioredis.Redis, events: EventLog, *, linger_s: float = 5.0) -> None:
        self._redis = redis
        self._events = events
        self._linger_s = linger_s
        self._feeds: dict[str, _Feed] = {}

    def stats(self) -> dict[str, int]:
        return {"feeds": len(self._feeds), "clients": sum(len(f.subscribers) for f in self._feeds.values())}

    @asynccontextmanager
    async def subscribe(self, ws: str, wants: EventFilter | None = None) -> AsyncIterator[tuple[Subscriber, str]]:
        """Yields (subscriber, start): every event after `start` that `wants` lets through will arrive on the
        subscriber's queue."""
        feed = self._feeds.get(ws)
        if feed is None:
            feed = self._feeds[ws] = _Feed(ws)
            feed.task = asyncio.get_running_loop().create_task(self._run(feed), name=f"sse-feed:{ws}")
        if feed.stop_handle is not None:
            feed.stop_handle.cancel()
            feed.stop_handle = None
        sub = Subscriber(wants or EventFilter())
        feed.subscribers.add(sub)  # before reading the cursor: nothing after it can be missed
        try:
            await feed.ready.wait()
            yield sub, feed.cursor or "0-0"
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers and self._feeds.get(ws) is feed:
                feed.stop_handle = asyncio.get_running_loop().call_later(self._linger_s, self._stop_if_idle, feed)

    async def replay(self, ws: str, after: str) -> AsyncIterator[FeedEvent]:
        """Events with ids after `after`, oldest first, up to the newest at the time of reading."""
        cursor = after
        while True:
            batch = await self._redis.xrange(keys.events(ws), min=f"({cursor}", max="+", count=READ_COUNT)
            for entry_id, fields in batch:
                cursor = entry_id
                yield FeedEvent.of(decode(entry_id, fields))
            if len(batch) < READ_COUNT:
                return

    def _stop_if_idle(self, feed: _Feed) -> None:
        feed.stop_handle = None
        if feed.subscribers or self._feeds.get(feed.ws) is not feed:
            return
        del self._feeds[feed.ws]
        if feed.task is not None:
            feed.task.cancel()  # the blocked XREAD is cancelled; redis-py drops that connection

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
        self._feeds.clear()

    async def _run(self, feed: _Feed) -> None:
        while True:
            try:
                if feed.cursor is None:
                    feed.cursor = await self._events.last_id(feed.ws)
                    feed.ready.set()
                batch = await self._events.read_stored_after(feed.ws, feed.cursor, block_ms=BLOCK_MS,
                                                             count=READ_COUNT)
                # decoded once per event, not per subscriber, and only when a subscriber may want it
                events = _wanted_events(batch, feed.subscribers)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:  # Redis restarting: keep the clients, resume from the cursor
                log.info("sse feed %s: %s; retrying", feed.ws, type(exc).__name__)
                await asyncio.sleep(RETRY_S)
                continue
            except Exception:  # a bug must not silently strand every client of this workspace
                log.exception("sse feed %s failed; retrying", feed.ws)
                await asyncio.sleep(RETRY_S)
                continue
            # No await from here to the cursor update: a subscriber joins either before this
            # batch (and gets all of it) or after (and starts from the new cursor).
            for sub in list(feed.subscribers):
                for event in events:
                    sub.offer(event)
            if batch:
                feed.cursor = batch[-1][0]  # past what nobody wanted too


def _wanted_events(batch: list[tuple[str, str]], subscribers: set[Subscriber]) -> list[FeedEvent]:
    """The entries of `batch` any of `subscribers` may want, decoded. An entry whose type no subscriber's filter
    names is not decoded at all (a campaign's `message.queued` to a browser that watches acks and sessions:
    500 such entries cost 1.65 ms decoded, 0.22 ms skipped; bench/results/experiments/sse-hub-skip-20261208).
    One that cannot be typed without decoding (`stored_type` None) is decoded and filtered as before."""
    if any(not sub.filter.types for sub in subscribers):  # a stream that wants every type
        return [FeedEvent.of(decode_stored(entry_id, stored)) for entry_id, stored in batch]
    types = frozenset().union(*(sub.filter.types or () for sub in subscribers))
    return [FeedEvent.of(decode_stored(entry_id, stored)) for entry_id, stored in batch
            if (kind := stored_type(stored)) is None or kind in types]


class AccessGuard(Protocol):
    every_s: float

    async def check(self) -> str | None: ...  # None while access holds, else why it ended

    async def close(self) -> None: ...


class _Recheck:
    """When a guard is due for its next check; without a guard, never."""

    def __init__(self, guard: AccessGuard | None) -> None:
        self._guard = guard
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + guard.every_s if guard else 0.0

    def timeout(self) -> float | None:
        return max(0.0, self._due - self._loop.time()) if self._guard else None

    async def ended(self) -> str | None:
        if self._guard is None or self._loop.time() < self._due:
            return None
        reason = await self._guard.check()
        self._due = self._loop.time() + self._guard.every_s
        return reason


async def event_stream(hub: EventHub, ws: str, last_id: str | None, types: frozenset[str] | None,
                       session_id: str | None, guard: AccessGuard | None = None,
                       ) -> AsyncIterator[ServerSentEvent | bytes]:
    wants = EventFilter(types, session_id)
    try:
        async with hub.subscribe(ws, wants) as (sub, start):
            recheck = _Recheck(guard)
            # First bytes at once, so proxies and clients see the stream open before any event exists;
            # sent once subscribed, so a client that saw it misses nothing published afterwards.
            yield ServerSentEvent(comment="connected", retry=RECONNECT_MS)
            sent = stream_id(last_id or start)
            if last_id:
                async for event in hub.replay(ws, last_id):
                    if reason := await recheck.ended():
                        yield ServerSentEvent(comment=f"access ended: {reason}")
                        return
                    sent = event.position
                    if wants.wants(event):
                        yield event.frame()
            while True:
                if reason := await recheck.ended():
                    yield ServerSentEvent(comment=f"access ended: {reason}")
                    return
                try:
                    first = await asyncio.wait_for(sub.queue.get(), recheck.timeout())
                except TimeoutError:
                    continue  # the guard is due
                # What is queued goes out as one chunk: one ASGI body message through the Serve proxy for a
                # burst instead of one per event (most of the stream's CPU under load). The guard is checked
                # between chunks, as it was between events: a chunk holds what was published up to now.
                # The queue holds only events this stream wants (the hub filters on offer).
                chunk, ended = [], first is None
                event = first
                while event is not None:
                    if event.position > sent:  # not already replayed
                        sent = event.position
                        chunk.append(event.frame())
                    try:
                        event = sub.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    ended = event is None
                if chunk:
                    yield b"".join(chunk)
                if ended:
                    return
    finally:
        if guard is not None:
            await guard.close()
