"""Shared by the conversation tests and their attack tests: a session linked to a simulator phone whose
history was seeded first (the page receives it at sync, as a real device gets the phone's history)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.events import collect_events
from tests.flows import link_session, stream_url


@dataclass(frozen=True)
class Seeded:
    ws: str
    sid: str
    number: str  # the linked phone (the history's owner)
    chats: list[str]  # the seeded chat ids, newest first
    base: str  # /v1/workspaces/{ws}/sessions/{sid}


def history_number(seed: int, i: int) -> str:
    """The phone number the simulator's history gives person `i` (simulator/wa_web/history.py)."""
    return f"19{seed % 1000:03d}{i:07d}"


async def seed_and_link(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, base_url: str, ws: str, sid: str,
                        number: str, history: dict[str, Any]) -> Seeded:
    seeded = await phone_api.post(f"/_phone/{number}/history", json=history)
    assert seeded.status_code == 200, seeded.text
    async with collect_events(await stream_url(api, base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, sid, number)
    base = f"/v1/workspaces/{ws}/sessions/{sid}"
    chats = seeded.json()["chats"]
    await wait_listed(api, base, len(chats))
    return Seeded(ws, sid, number, chats, base)


async def wait_listed(api: httpx.AsyncClient, base: str, total: int, timeout_s: float = 30.0) -> None:
    """Until the page holds every seeded chat (the history arrives in frames around `ready`)."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        got = await api.get(f"{base}/chats", params={"limit": 100})
        if got.status_code == 200:
            seen = len(await all_chats(api, base))
            if seen >= total:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the page holds {seen} of {total} chats")


async def all_chats(api: httpx.AsyncClient, base: str, limit: int = 100, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        got = await api.get(f"{base}/chats", params=query)
        assert got.status_code == 200, got.text
        body = got.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("chat pages never ended")


async def wait_for(fetch: Any, check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await fetch()
        if check(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition never held; last: {last}")
