"""Steps the message-pipeline tests share: watch a workspace, send, wait for a status, read the phone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "meta-verify-token-for-tests"
FINAL = frozenset({"sent", "delivered", "read", "failed"})


async def send(api: httpx.AsyncClient, ws: str, to: str, text: str, **extra: Any) -> dict[str, Any]:
    headers = {"Idempotency-Key": extra.pop("idempotency_key")} if "idempotency_key" in extra else None
    response = await api.post(f"/v1/workspaces/{ws}/messages", json={"to": to, "text": text, **extra},
                              headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


async def message(api: httpx.AsyncClient, ws: str, mid: str) -> dict[str, Any]:
    response = await api.get(f"/v1/workspaces/{ws}/messages/{mid}")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_status(api: httpx.AsyncClient, ws: str, mid: str, statuses: set[str] | frozenset[str],
                      timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await message(api, ws, mid)
        if last["status"] in statuses:
            return last
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{mid} never reached {sorted(statuses)}; last: {last}")


async def inbox(phone_api: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    return (await phone_api.get(f"/_phone/{number}/inbox")).json()["messages"]


def duplicates(values: list[str]) -> dict[str, int]:
    return {v: n for v, n in Counter(values).items() if n > 1}


def cloud_config(sim: Any, pnid: str, token: str, **options: Any) -> dict[str, Any]:
    """A Cloud API block for PUT /provider pointing at the simulator; Meta's limits off unless asked."""
    body = {"phone_number_id": pnid, "access_token": token, "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN, "graph_base_url": sim.url, "throughput_per_second": None,
            "pair_burst": None}
    body.update(options)
    return body


async def put_provider(api: httpx.AsyncClient, ws: str, **body: Any) -> dict[str, Any]:
    response = await api.put(f"/v1/workspaces/{ws}/provider", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def put_pacing(api: httpx.AsyncClient, ws: str, **body: Any) -> dict[str, Any]:
    response = await api.put(f"/v1/workspaces/{ws}/pacing", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(check, timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition never held; last: {value!r}")
        await asyncio.sleep(every)


class PageSignals:
    """Records what a page signals (a PageSession's callback) so a test can wait for one kind.

    `seen` keeps every (kind, payload) in order; `wait` returns the first payload of a kind, polling, and
    names the kinds it did see when the kind never comes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: Any, payload: dict[str, Any]) -> None:
        self.seen.append((str(kind), payload))

    async def wait(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for k, p in self.seen:
                if k == kind:
                    return p
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{kind} not signalled; saw {[k for k, _ in self.seen]}")


async def publish_events(service: Any, ws: str, n: int = 1, prefix: str = "event") -> list[str]:
    """Publish `n` `message.received` events of session s1 straight into the workspace's event stream (what the
    webhook dispatcher delivers), through the service's own EventLog; their ids, in order."""
    from wa_ray.events import MESSAGE_RECEIVED, Event
    from wa_ray.storage.events import EventLog
    from wa_ray.storage.redis_client import connect

    redis = connect(service.config.redis_url)
    try:
        log = EventLog(redis)
        return [await log.publish(Event(MESSAGE_RECEIVED, ws, "s1", {"text": f"{prefix} {i}"})) for i in range(n)]
    finally:
        await redis.aclose()
