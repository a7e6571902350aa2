"""A small SSE reader over httpx, for the demo, the bench and the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str | None
    data: str

    def json(self) -> dict:
        return orjson.loads(self.data)


async def read_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    event_id = event_type = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(event_id, event_type, "\n".join(data))
            event_id = event_type = None
            data = []
        elif line.startswith(":"):
            continue  # heartbeat comment
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                event_id = value
            elif name == "event":
                event_type = value
            elif name == "data":
                data.append(value)
