"""SSE through the real Serve proxy: resume without gaps or repeats, heartbeats, filters, and no leaks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from wa_ray.storage.events import EventLog
from tests.conftest import OPERATOR
from wa_ray.events import Event

pytestmark = pytest.mark.asyncio


@dataclass
class Stream:
    """Raw lines of one SSE response, parsed into events and comments as they arrive."""

    response: httpx.Response
    events: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: str | None = None

    async def pump(self) -> None:
        current: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            if line == "":
                if "data" in current:
                    self.events.append({"id": current.get("id"), "event": current.get("event"),
                                        **orjson.loads(current["data"])})
                current = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                if name == "retry":
                    self.retry = value.strip()
                current[name] = value.removeprefix(" ")

    async def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream: {self.events[-5:]} {self.comments[-3:]}")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[Stream]:
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = Stream(response)
        task = asyncio.create_task(stream.pump())
        try:
            await stream.wait(lambda s: "connected" in s.comments)
            yield stream
        finally:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, httpx.HTTPError):
                pass


@pytest.fixture
async def publish(live_redis):
    log = EventLog(live_redis)

    async def publish(ws: str, type_: str = "session.status", sid: str | None = "s1", **data) -> str:
        return await log.publish(Event(type_, ws, sid, data or {"n": time.time()}))

    return publish


@pytest.fixture
async def reader(make_key, client_for, unique_ws) -> httpx.AsyncClient:
    return client_for(await make_key("workspace", unique_ws, rate_per_s=0))


async def test_resume_replays_missed_events_once(reader, publish, unique_ws) -> None:
    path = f"/v1/workspaces/{unique_ws}/events"
    ids = [await publish(unique_ws, n=i) for i in range(5)]

    async with sse(reader, path, {"Last-Event-ID": ids[1]}) as stream:
        assert stream.response.headers["x-accel-buffering"] == "no"
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.retry is not None  # EventSource is told how soon to reconnect
        await stream.wait(lambda s: len(s.events) >= 3)
        assert [e["id"] for e in stream.events] == ids[2:]
        live = [await publish(unique_ws, n=i) for i in (5, 6)]
        await stream.wait(lambda s: len(s.events) >= 5)
    seen = [e["id"] for e in stream.events]
    assert seen == ids[2:] + live and len(set(seen)) == len(seen)

    # the browser reconnects with the last id it saw: only what came after, and nothing twice
    missed = await publish(unique_ws, n=7)
    async with sse(reader, path, {"Last-Event-ID": live[-1]}) as again:
        await again.wait(lambda s: len(s.events) >= 1)
        newer = await publish(unique_ws, n=8)
        await again.wait(lambda s: len(s.events) >= 2)
        await asyncio.sleep(0.3)
    assert [e["id"] for e in again.events] == [missed, newer]

    # `after=` does the same for clients that cannot set the header; without either, only new events come
    async with sse(reader, f"{path}?after={ids[3]}") as by_query:
        await by_query.wait(lambda s: len(s.events) >= 5)
    assert [e["id"] for e in by_query.events][:2] == ids[4:] + live[:1]
    async with sse(reader, path) as fresh:
        await asyncio.sleep(0.2)
        assert fresh.events == []
        newest = await publish(unique_ws, n=9)
        started = time.monotonic()
        await fresh.wait(lambda s: len(s.events) == 1)
        assert time.monotonic() - started < 1.0  # through the Serve proxy, unbuffered
    assert fresh.events[0]["id"] == newest


async def test_filters_by_type_and_session(reader, publish, unique_ws) -> None:
    path = f"/v1/workspaces/{unique_ws}/events?types=session.qr,message.ack&session_id=s2"
    async with sse(reader, path) as stream:
        await publish(unique_ws, "session.qr", "s1", qr="a")
        want1 = await publish(unique_ws, "session.qr", "s2", qr="b")
        await publish(unique_ws, "session.status", "s2", state="qr_required")
        await publish(unique_ws, "message.ack", "s1", status="read")
        want2 = await publish(unique_ws, "message.ack", "s2", status="read")
        await stream.wait(lambda s: len(s.events) >= 2)
        await asyncio.sleep(0.2)
    assert [e["id"] for e in stream.events] == [want1, want2]
    bad = await reader.get(f"/v1/workspaces/{unique_ws}/events?types=session.qr,bogus")
    assert bad.status_code == 422 and "bogus" not in bad.text  # a 422 never echoes what it rejects
    assert "session.qr" in bad.json()["error"]["details"]["known"]
    for query in ("session_id=../x", "heartbeat=0", "after=latest"):
        assert (await reader.get(f"/v1/workspaces/{unique_ws}/events?{query}")).status_code == 422, query
    r = await reader.get(f"/v1/workspaces/{unique_ws}/events", headers={"Last-Event-ID": "0-0; DROP"})
    assert r.status_code == 422


async def test_heartbeat_comments(reader, unique_ws) -> None:
    async with sse(reader, f"/v1/workspaces/{unique_ws}/events?heartbeat=1") as stream:
        await stream.wait(lambda s: any(c.startswith("ping") for c in s.comments), timeout=5)


async def test_stream_token_is_enough_for_a_browser(service, reader, publish, unique_ws) -> None:
    token = (await reader.post(f"/v1/workspaces/{unique_ws}/stream-tokens", json={"session_id": "s3"})).json()
    assert token["session_id"] == "s3" and token["expires_at"] > time.time()
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as browser, \
            sse(browser, f"/v1/workspaces/{unique_ws}/events?token={token['token']}") as stream:
        await publish(unique_ws, "session.status", "s1", state="connected")
        mine = await publish(unique_ws, "session.status", "s3", state="connected")
        await stream.wait(lambda s: len(s.events) >= 1)
        await asyncio.sleep(0.2)
    assert [e["id"] for e in stream.events] == [mine]  # pinned to its session


def _gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


async def test_disconnects_free_everything(reader, raw, live_redis, unique_ws) -> None:
    """200 connect/disconnect cycles through the proxy leave no SSE clients, feeds, tasks or Redis connections."""

    async def measure() -> tuple[float, float, float, int]:
        text = (await raw.get("/metrics", headers=OPERATOR)).text
        clients = len(await live_redis.client_list())
        return (_gauge(text, "wa_ingress_sse_clients"), _gauge(text, "wa_ingress_sse_feeds"),
                _gauge(text, "wa_ingress_asyncio_tasks"), clients)

    async def settled(limit_s: float = 20.0) -> tuple[float, float, float, int]:
        deadline = time.monotonic() + limit_s
        while True:
            m = await measure()
            if (m[0] == 0 and m[1] == 0) or time.monotonic() > deadline:
                return m
            await asyncio.sleep(0.5)

    path = f"/v1/workspaces/{unique_ws}/events"
    before = await settled()
    async with sse(reader, path):
        open_now = await measure()
    assert open_now[0] >= 1 and open_now[1] >= 1  # the gauges do see a connected client
    for i in range(200):
        # half of them leave while their reader is blocked, half right after a replay
        headers = {"Last-Event-ID": "0-0"} if i % 2 else None
        async with reader.stream("GET", path, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    break
    after = await settled()
    assert after[0] == 0 and after[1] == 0, (before, after)
    assert after[2] <= before[2] + 10, (before, after)  # asyncio tasks back to where they were
    assert after[3] <= before[3] + 5, (before, after)  # Redis connections too
    print("sse churn: before", before, "after", after)
