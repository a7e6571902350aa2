"""Building blocks for scenarios that need their own Ray cluster (run in a subprocess by the tests)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx

from wa_ray.storage.embedded import free_port
from wa_ray.config import Settings
from wa_ray.signing import HmacAuth
from wa_ray.entry.sse_client import read_events

KEY_ID = "scenario-admin"


def scenario_settings(data_dir: Path, web_url: str, **extra) -> Settings:
    extra.setdefault("egress_allow", "127.0.0.0/8,::1")  # webhook receivers on loopback (wa_ray/egress.py)
    extra.setdefault("egress_dns", False)
    # no scenario reads Ray's dashboard (tests/integration/test_dashboard.py proves it on the shared service);
    # its head and a dozen module processes would cost each start seconds of the two cores
    extra.setdefault("dashboard", False)
    return Settings(data_dir=data_dir, http_port=free_port(), web_url=web_url, api_key_id=KEY_ID,
                    api_key_secret=extra.pop("secret", None) or secrets.token_urlsafe(24), **extra)


def client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{settings.http_host}:{settings.http_port}",
                             auth=HmacAuth(KEY_ID, settings.api_key_secret or ""), timeout=60)


async def link_many(api: httpx.AsyncClient, sim_url: str, ws: str, sessions: dict[str, str]) -> None:
    """Create sessions {sid: phone} and scan each one's first QR as it appears on the SSE stream."""
    token = (await api.post(f"/v1/workspaces/{ws}/stream-tokens")).json()["token"]
    pending = set(sessions)
    async with httpx.AsyncClient(timeout=None) as raw, httpx.AsyncClient(base_url=sim_url) as phone, \
            raw.stream("GET", f"{str(api.base_url).rstrip('/')}/v1/workspaces/{ws}/events?token={token}") as stream:
        for sid in sessions:
            r = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": sid})
            assert r.status_code == 201, r.text
        async for event in read_events(stream):
            body = event.json()
            sid = body.get("session_id")
            if event.event == "session.qr" and sid in pending and body["data"]["seq"] == 1:
                await phone.post(f"/_phone/{sessions[sid]}/scan", json={"qr": body["data"]["qr"]})
            elif event.event == "session.ready" and sid in pending:
                pending.discard(sid)
                if not pending:
                    return


async def wait_all(api: httpx.AsyncClient, ws: str, state: str, count: int, timeout: float) -> float:
    """Poll the registry until `count` sessions are in `state`.

    A removed node may take the Ingress replica with it; Serve starts a new one elsewhere. A client polls
    through that the way any HTTP client would: a dropped connection or a 5xx on a GET is retried."""
    started = time.monotonic()
    sessions: list = []
    while time.monotonic() - started < timeout:
        try:
            r = await api.get(f"/v1/workspaces/{ws}/sessions")
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if r.status_code >= 500:
            await asyncio.sleep(0.5)
            continue
        sessions = r.json()
        if len([s for s in sessions if s["state"] == state]) >= count:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not all {count} sessions reached {state}: {sessions}")


async def qr_events_since(api: httpx.AsyncClient, ws: str, since_ms: int) -> int:
    """Count session.qr events after a moment, read back from the event stream (SSE resume from an id)."""
    token = (await api.post(f"/v1/workspaces/{ws}/stream-tokens")).json()["token"]
    count = 0
    async with httpx.AsyncClient(timeout=3) as raw:
        try:
            async with raw.stream("GET", f"{str(api.base_url).rstrip('/')}/v1/workspaces/{ws}/events?token={token}",
                                  headers={"Last-Event-ID": f"{since_ms}-0"}) as stream:
                async for event in read_events(stream):
                    count += event.event == "session.qr"
        except httpx.ReadTimeout:
            pass  # the replay is over once the stream goes quiet
    return count
