"""Collect a workspace's SSE stream in the background, so tests can wait on what arrives."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import httpx

from wa_ray.entry.sse_client import read_events


@dataclass
class EventCollector:
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            await asyncio.sleep(0.02)
        seen = [(e["type"], e.get("data")) for e in self.events][-15:]
        raise TimeoutError(f"event not seen in {timeout}s; last events: {seen}")

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


@asynccontextmanager
async def collect_events(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[EventCollector]:
    collector = EventCollector()

    async def pump() -> None:
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url, headers=headers) as resp:
            resp.raise_for_status()
            collector.headers = dict(resp.headers)
            collector.connected.set()
            async for event in read_events(resp):
                collector.ids.append(event.id or "")
                collector.events.append(event.json())

    task = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(collector.connected.wait(), 15)
        yield collector
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
