"""SSE frames (serve_app/sse.py) against a real Redis: whatever its filter, live or replayed, a stream sends for
each event exactly the bytes `ServerSentEvent(data=orjson.dumps(event).decode(), event=type, id=id).encode()`
gives for the decoded event, and what a stream filters out takes no room in its queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from sse_starlette import ServerSentEvent

from wa_ray.events import Event
from wa_ray.serve_app import sse
from wa_ray.serve_app.sse import QUEUE_MAX, EventFilter, EventHub, event_stream
from wa_ray.storage import keys
from wa_ray.storage.events import EventLog, decode, encode, stored_type

WS = "ws-frames"
# (types, session_id) of the streams compared: all events; two types; one session
FILTERS: list[tuple[frozenset[str] | None, str | None]] = [
    (None, None),
    (frozenset({"message.received", "session.qr"}), None),
    (None, "s1"),
]
# Stored forms no encode() writes (spaces, no type, a line break in the type, an "id" of its own):
# a stream must still send them as the decoded event, re-encoded, as it did.
HAND_WRITTEN = [
    '{"type": "message.received", "session_id": "s1", "data": {"k": "v"}}',
    '{"workspace_id":"ws-frames","session_id":null,"data":{}}',
    '{"type":"message.received\\nx","session_id":"s1","data":{"t":"a\\r\\nb"}}',
    '{"id":"1-1","type":"session.qr","session_id":null,"data":{"qr":"x"}}',
]


def _old_frame(event: dict[str, Any]) -> bytes:
    return ServerSentEvent(data=orjson.dumps(event).decode(), event=event.get("type"), id=event["id"]).encode()


def _old_wanted(event: dict[str, Any], types: frozenset[str] | None, session_id: str | None) -> bool:
    if types and event.get("type") not in types:
        return False
    return not session_id or event.get("session_id") == session_id


async def _publish_all(redis: aioredis.Redis) -> list[str]:
    log = EventLog(redis)
    events = [
        Event("message.received", WS, "s1", {
            "text": "héllo 👋 «ciao» 中文 — ok", "quote": 'he said "hi"\n\t\\', "odd": "\u2028\u2029\u0001\x7f",
            "nested": {"a": [1, 2.5, {"b": None}]}}),
        Event("session.status", WS, None, {"state": "connected", "deep": {"x": {"y": {"z": [[], {}, [True]]}}}}),
        Event("session.qr", WS, "s1", {"qr": "2@abc,def", "big": 2**63 - 1, "small": -1.5e-7, "huge": 1e300}),
        Event("message.ack", WS, "s2", {"message_id": "m-1", "status": "read", "emoji": "👍🏽"}),
    ]
    ids = [await log.publish(event) for event in events]
    for stored in HAND_WRITTEN:
        ids.append(await redis.xadd(keys.events(WS), {"e": stored}))
    return ids


async def _expected(redis: aioredis.Redis, after: str) -> list[list[bytes]]:
    """Per filter, the frames the code before FeedEvent sent for the events after `after`."""
    stored = [decode(entry_id, fields) for entry_id, fields in await redis.xrange(keys.events(WS), min=f"({after}")]
    return [[_old_frame(e) for e in stored if _old_wanted(e, types, sid)] for types, sid in FILTERS]


def _raw(item: ServerSentEvent | bytes) -> bytes:
    return item.encode() if isinstance(item, ServerSentEvent) else item


async def _read(stream: AsyncIterator[ServerSentEvent | bytes], size: int) -> bytes:
    """What the stream sends until `size` bytes (a chunk may hold several frames)."""
    got = b""
    while len(got) < size:
        got += _raw(await asyncio.wait_for(anext(stream), 10))
    return got


async def _open(hub: EventHub, last_id: str | None) -> list[AsyncIterator[ServerSentEvent | bytes]]:
    streams = [event_stream(hub, WS, last_id, types, sid) for types, sid in FILTERS]
    for stream in streams:
        first = await asyncio.wait_for(anext(stream), 10)
        assert isinstance(first, ServerSentEvent) and first.comment == "connected"
    return streams


async def _close(hub: EventHub, streams: list[AsyncIterator[ServerSentEvent | bytes]]) -> None:
    for stream in streams:
        await stream.aclose()  # type: ignore[attr-defined]
    await hub.close()


async def test_live_and_replayed_frames_are_the_bytes_they_were(redis: aioredis.Redis) -> None:
    before = await redis.xadd(keys.events(WS), {"e": orjson.dumps({"type": "session.qr", "data": {}}).decode()})
    hub = EventHub(redis, EventLog(redis), linger_s=0)
    live_streams = await _open(hub, None)  # subscribed after `before`, before the rest: they arrive live
    try:
        ids = await _publish_all(redis)
        expected = await _expected(redis, before)
        assert all(expected) and len({b"".join(f) for f in expected}) == len(FILTERS)  # each filter sends some
        live = [await _read(stream, len(b"".join(frames))) for stream, frames in zip(live_streams, expected)]
    finally:
        await _close(hub, live_streams)
    assert live == [b"".join(frames) for frames in expected]

    # Replayed, from the start and from the middle: one frame per event, the same bytes as live
    for after in ("0-0", ids[2]):
        hub = EventHub(redis, EventLog(redis), linger_s=0)
        replay_streams = await _open(hub, after)
        try:
            expected = await _expected(redis, after)
            replayed = [[_raw(await asyncio.wait_for(anext(stream), 10)) for _ in frames]
                        for stream, frames in zip(replay_streams, expected)]
        finally:
            await _close(hub, replay_streams)
        assert replayed == expected, after
    assert live[0].endswith(b"".join(replayed[0]))  # the same event, live or replayed, is the same bytes


async def test_filtered_out_events_take_no_queue_room(redis: aioredis.Redis) -> None:
    hub = EventHub(redis, EventLog(redis), linger_s=0)
    log = EventLog(redis)
    try:
        async with hub.subscribe(WS, EventFilter(frozenset({"session.qr"}))) as (qr_only, _), \
                hub.subscribe(WS) as (everything, _):
            pipe = redis.pipeline(transaction=False)
            for n in range(QUEUE_MAX + 1):  # more than a queue holds, none of them a session.qr
                log.publish_in(pipe, Event("message.queued", WS, "s1", {"n": n}))
            log.publish_in(pipe, Event("session.qr", WS, "s1", {"qr": "q"}))
            await pipe.execute()
            got = await asyncio.wait_for(qr_only.queue.get(), 10)
            assert got is not None and got.type == "session.qr" and qr_only.queue.empty()
            assert not qr_only.overflowed
            assert got.frame() is got.frame()  # framed once, whoever sends it
            # a stream that wants them all and never reads is still ended (it resumes with Last-Event-ID); the
            # hub offered it the session.qr's whole read before qr_only could take it
            assert everything.overflowed and everything.queue.get_nowait() is None
    finally:
        await hub.close()


def test_the_type_is_read_off_what_encode_stored_and_nothing_else() -> None:
    assert stored_type(encode(Event("message.queued", WS, "s1", {"type": "x"}))) == "message.queued"
    assert [stored_type(stored) for stored in HAND_WRITTEN] == [None, None, None, None]
    assert stored_type('{"type":"a\\"b","data":{}}') is None  # an escape: decode it to know
    assert stored_type('{"type":null}') is None and stored_type('{"type":"unterminated') is None


async def test_a_feed_decodes_only_what_a_subscriber_may_want(redis: aioredis.Redis,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []

    def counting(entry_id: str, stored: str) -> dict[str, Any]:
        decoded.append(entry_id)
        return decode(entry_id, {"e": stored})
    monkeypatch.setattr(sse, "decode_stored", counting)
    hub = EventHub(redis, EventLog(redis), linger_s=0)
    log = EventLog(redis)
    try:
        async with hub.subscribe(WS, EventFilter(frozenset({"session.qr"}))) as (qr_only, _):
            pipe = redis.pipeline(transaction=False)
            for n in range(50):
                log.publish_in(pipe, Event("message.queued", WS, "s1", {"n": n}))
            log.publish_in(pipe, Event("session.qr", WS, "s1", {"qr": "q"}))
            await pipe.execute()
            await redis.xadd(keys.events(WS), {"e": HAND_WRITTEN[0]})  # untyped without decoding: decoded
            got = await asyncio.wait_for(qr_only.queue.get(), 10)
            assert got is not None and got.type == "session.qr"
            last = (await redis.xrevrange(keys.events(WS), count=1))[0][0]
            for _ in range(100):  # the hand-written entry may come in a read of its own
                if len(decoded) == 2:
                    break
                await asyncio.sleep(0.05)
            assert decoded == [got.id, last], "only the session.qr and the entry it could not type"
            async with hub.subscribe(WS) as (_, start):
                assert start == last, "the cursor moved past what nobody wanted"
    finally:
        await hub.close()
