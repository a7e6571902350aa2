"""Steps several tests share: link a session through the real path, poll until something shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import httpx

from tests.events import EventCollector

if TYPE_CHECKING:
    from wa_ray.entry.service import Service

T = TypeVar("T")


async def link_session(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, events: EventCollector,
                       ws: str, sid: str, phone: str) -> dict:
    created = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": sid})
    assert created.status_code == 201, created.text
    qr = await events.wait_for(lambda e: e["type"] == "session.qr" and e["session_id"] == sid)
    scan = await phone_api.post(f"/_phone/{phone}/scan", json={"qr": qr["data"]["qr"]})
    assert scan.status_code == 200, scan.text
    return await events.wait_for(lambda e: e["type"] == "session.ready" and e["session_id"] == sid)


async def wait_state(api: httpx.AsyncClient, ws: str, sid: str, state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        last = (await api.get(f"/v1/workspaces/{ws}/sessions/{sid}")).json()
        if last.get("state") == state:
            return last
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{ws}/{sid} never reached {state}; last: {last}")


async def provider_snapshot_expired(service: Service) -> None:
    """Wait until every ingress replica's provider snapshot of a workspace (`provider_cache_ttl_s`) was taken
    after what the caller just changed (provider, limits, a session's link). A snapshot's lifetime counts
    from the end of its fetch, so a fetch already on its way when the change landed gets a margin on top."""
    await asyncio.sleep(service.settings.provider_cache_ttl_s + 0.35)


async def stream_url(api: httpx.AsyncClient, base_url: str, ws: str) -> str:
    token = (await api.post(f"/v1/workspaces/{ws}/stream-tokens")).json()["token"]
    return f"{base_url}/v1/workspaces/{ws}/events?token={token}"


async def poll(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20.0, every: float = 0.1) -> T:
    """What `probe()` returns once it returns something other than None, asked every `every` s; TimeoutError
    naming `what` after `timeout` s. The probe may assert on what it sees (an assertion fails at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await probe()
        if got is not None:
            return got
        await asyncio.sleep(every)
    raise TimeoutError(f"{what} (not within {timeout}s)")
