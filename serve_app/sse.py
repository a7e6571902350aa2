"""The SSE event stream: Redis stream ids are the SSE ids, so Last-Event-ID resumes exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sse_starlette import ServerSentEvent

from storage.events import EventLog

BLOCK_MS = 10_000
RETRY_S = 0.5


async def event_stream(events: EventLog, ws: str, last_id: str | None, types: set[str] | None,
                       session_id: str | None) -> AsyncIterator[ServerSentEvent]:
    cursor = last_id or await events.last_id(ws)
    while True:
        try:
            batch = await events.read_after(ws, cursor, block_ms=BLOCK_MS)
        except (RedisConnectionError, RedisTimeoutError):
            await asyncio.sleep(RETRY_S)  # Redis restarting: keep the client, resume from the cursor
            continue
        for event in batch:
            cursor = event["id"]
            if types and event["type"] not in types:
                continue
            if session_id and event.get("session_id") != session_id:
                continue
            yield ServerSentEvent(data=orjson.dumps(event).decode(), event=event["type"], id=event["id"])
