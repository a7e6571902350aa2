"""Helpers for tests and benches: run the simulator (in-process or as `wa-sim web`),
drive the phone side, and read the page the way whatsapp-web.js does.

with running_web_simulator() as sim:
    page.goto(sim.url)
    PhoneClient(sim.url, "15550001").scan(qr)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import httpx
import uvicorn
from starlette.applications import Starlette

from wa_ray.simulator.wa_web.config import SimConfig
from wa_ray.simulator.wa_web.server import create_app
from wa_ray.runtime import CHROMIUM_FLAGS, default_chromium

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

CHROMIUM = default_chromium() or "/usr/bin/chromium"
CHROMIUM_ARGS = list(CHROMIUM_FLAGS)  # the same launch flags as the service's browser hosts

# The QR string as whatsapp-web.js 1.34.x assembles it from the page modules.
BUILD_QR_JS = """async () => {
  const reg = await window.require('WAWebSignalStoreApi').waSignalStore.getRegistrationInfo();
  const noise = await window.require('WAWebUserPrefsInfoStore').waNoiseInfo.get();
  const b64 = window.require('WABase64');
  const adv = await window.require('WAWebUserPrefsMultiDevice').getADVSecretKey();
  const platform = window.require('WAWebCompanionRegClientUtils').DEVICE_PLATFORM;
  return window.require('WAWebConnModel').Conn.ref + ',' + b64.encodeB64(noise.staticKeyPair.pubKey) + ','
    + b64.encodeB64(reg.identityKeyPair.pubKey) + ',' + adv + ',' + platform;
}"""

STATE_JS = "window.require('WAWebSocketModel').Socket.state"


async def wait_state(page: Page, state: str, timeout: float = 10_000) -> None:
    await page.wait_for_function(f"{STATE_JS} === {state!r}", timeout=timeout)


async def open_qr_page(ctx: BrowserContext, url: str, timeout: float = 10_000) -> tuple[Page, str]:
    """A new page in `ctx` showing a QR code; returns it with the QR string."""
    page = await ctx.new_page()
    await page.goto(url)
    await wait_state(page, "UNPAIRED", timeout=timeout)
    return page, await page.evaluate(BUILD_QR_JS)


async def link_page(ctx: BrowserContext, url: str, number: str, timeout: float = 10_000) -> Page:
    """Open the page in `ctx`, scan its QR with phone `number`, wait for CONNECTED."""
    page, qr = await open_qr_page(ctx, url, timeout=timeout)
    async with AsyncPhoneClient(url, number) as phone:
        await phone.scan(qr)
    await wait_state(page, "CONNECTED", timeout=timeout)
    return page


@dataclass
class RunningSimulator:
    url: str
    app: Starlette
    port: int

    @property
    def state(self) -> Any:
        """The live SimState (only touch it from the server loop, or read-only)."""
        return self.app.state.sim


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_web_simulator(
    config: SimConfig | None = None, startup_timeout_s: float = 10.0
) -> Iterator[RunningSimulator]:
    """Serve the simulator with uvicorn on a free loopback port in a daemon thread."""
    app = create_app(config)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws_ping_interval=None,
        )
    )
    # uvicorn installs signal handlers only on the main thread; this one is not.
    thread = threading.Thread(target=server.run, name=f"wa-web-sim:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("web simulator failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("web simulator did not start in time")
        time.sleep(0.02)
    try:
        yield RunningSimulator(url=f"http://127.0.0.1:{port}", app=app, port=port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class SimulatorProcess:
    """`wa-sim web` running as its own process (what capacity runs measure)."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def web_simulator_process(
    port: int | None = None, startup_timeout_s: float = 20.0, log_level: str = "warning"
) -> Iterator[SimulatorProcess]:
    """Start `python -m wa_ray.simulator.cli web` on loopback and wait until it answers; stop it afterwards."""
    port = port or _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wa_ray.simulator.cli", "web", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", log_level],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"wa-sim web exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/_sim/stats", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("wa-sim web did not start in time")
            time.sleep(0.05)
        yield SimulatorProcess(url=url, port=port, proc=proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class PhoneError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.details = details


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
        except Exception:  # noqa: BLE001 - non-envelope errors still need reporting
            err = {"code": "http_error", "message": resp.text, "details": {}}
        raise PhoneError(resp.status_code, err.get("code", ""), err.get("message", ""), err.get("details", {}))
    return resp.json()


def _send_body(to: str, body: str, group_id: str | None, as_lid: bool, pn_known: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"to": to, "body": body}
    if group_id:
        payload["group_id"] = group_id
    if as_lid:
        payload.update(as_lid=True, pn_known=pn_known)
    return payload


class PhoneClient:
    """Synchronous phone-side control API for one phone number."""

    def __init__(self, base_url: str, number: str, timeout: float = 10.0) -> None:
        self.number = number
        self._root = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self._root}/_phone/{number}", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scan(self, qr: str, pushname: str | None = None) -> str:
        body: dict[str, Any] = {"qr": qr}
        if pushname is not None:
            body["pushname"] = pushname
        return str(_check(self._http.post("/scan", json=body))["device_id"])

    def link_with_code(self, code: str) -> str:
        return str(_check(self._http.post("/pairing-code", json={"code": code}))["device_id"])

    def unlink(self, device_id: str | None = None) -> list[str]:
        return list(_check(self._http.post("/unlink", json={"device_id": device_id} if device_id else {}))["unlinked"])

    def send(self, to: str, body: str, group_id: str | None = None, *, as_lid: bool = False,
             pn_known: bool = True) -> str:
        """A text; `as_lid`: from this phone's @lid, its phone told to the page only when `pn_known`."""
        return str(_check(self._http.post("/messages", json=_send_body(to, body, group_id, as_lid, pn_known)))["id"])

    def send_kind(self, to: str, kind: str, **fields: Any) -> str:
        """Any kind but text (phone_kinds.KindBody): media (data_b64, mimetype, ...), location, contacts."""
        return str(_check(self._http.post("/kinds", json={"to": to, "kind": kind, **fields}))["id"])

    def react(self, to: str, target_id: str, emoji: str) -> str:
        return str(_check(self._http.post("/reactions", json={"to": to, "target_id": target_id, "emoji": emoji}))["id"])

    def revoke(self, to: str, target_id: str) -> str:
        return str(_check(self._http.post("/revoke", json={"to": to, "target_id": target_id}))["id"])

    def edit(self, to: str, target_id: str, body: str) -> str:
        return str(_check(self._http.post("/edit", json={"to": to, "target_id": target_id, "body": body}))["id"])

    def set_config(self, **fields: Any) -> dict[str, Any]:
        return dict(_check(self._http.put("/config", json=fields)))

    def inbox(self) -> list[dict[str, Any]]:
        return list(_check(self._http.get("/inbox"))["messages"])

    def devices(self) -> list[dict[str, Any]]:
        return list(_check(self._http.get("/devices"))["devices"])

    def drop(self, seconds: float) -> int:
        return int(_check(self._http.post("/drop", json={"seconds": seconds}))["closed"])

    def ban(self, banned: bool = True) -> None:
        _check(self._http.post("/ban", json={"banned": banned}))

    def conflict(self, seconds: float = 0.0) -> int:
        return int(_check(self._http.post("/conflict", json={"seconds": seconds} if seconds else {}))["pages"])

    def seed_history(self, **fields: Any) -> dict[str, Any]:
        """POST /history (conversations.HistoryBody: chats, messages_per_chat, groups, contacts, lid_contacts,
        lid_unknown, days, seed) -> {"chats": [ids newest first], "contacts": n, "version"}."""
        return dict(_check(self._http.post("/history", json=fields)))

    def reads(self) -> list[dict[str, Any]]:
        return list(_check(self._http.get("/reads"))["reads"])

    def chatstates(self) -> list[dict[str, Any]]:
        return list(_check(self._http.get("/chatstates"))["states"])

    def set_registered(self, numbers: list[str]) -> list[str]:
        """PUT /_sim/registered: numbers registered on WhatsApp besides every phone the simulator knows."""
        return list(_check(self._http.put(self._root + "/_sim/registered", json={"numbers": numbers}))["numbers"])


class AsyncPhoneClient:
    """Same API as PhoneClient, for async tests."""

    def __init__(self, base_url: str, number: str, timeout: float = 10.0) -> None:
        self.number = number
        self._root = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=f"{self._root}/_phone/{number}", timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def scan(self, qr: str, pushname: str | None = None) -> str:
        body: dict[str, Any] = {"qr": qr}
        if pushname is not None:
            body["pushname"] = pushname
        return str(_check(await self._http.post("/scan", json=body))["device_id"])

    async def link_with_code(self, code: str) -> str:
        return str(_check(await self._http.post("/pairing-code", json={"code": code}))["device_id"])

    async def unlink(self, device_id: str | None = None) -> list[str]:
        return list(
            _check(await self._http.post("/unlink", json={"device_id": device_id} if device_id else {}))["unlinked"]
        )

    async def send(self, to: str, body: str, group_id: str | None = None, *, as_lid: bool = False,
                   pn_known: bool = True) -> str:
        payload = _send_body(to, body, group_id, as_lid, pn_known)
        return str(_check(await self._http.post("/messages", json=payload))["id"])

    async def send_kind(self, to: str, kind: str, **fields: Any) -> str:
        return str(_check(await self._http.post("/kinds", json={"to": to, "kind": kind, **fields}))["id"])

    async def react(self, to: str, target_id: str, emoji: str) -> str:
        body = {"to": to, "target_id": target_id, "emoji": emoji}
        return str(_check(await self._http.post("/reactions", json=body))["id"])

    async def revoke(self, to: str, target_id: str) -> str:
        return str(_check(await self._http.post("/revoke", json={"to": to, "target_id": target_id}))["id"])

    async def edit(self, to: str, target_id: str, body: str) -> str:
        return str(_check(await self._http.post("/edit", json={"to": to, "target_id": target_id, "body": body}))["id"])

    async def set_config(self, **fields: Any) -> dict[str, Any]:
        return dict(_check(await self._http.put("/config", json=fields)))

    async def inbox(self) -> list[dict[str, Any]]:
        return list(_check(await self._http.get("/inbox"))["messages"])

    async def devices(self) -> list[dict[str, Any]]:
        return list(_check(await self._http.get("/devices"))["devices"])

    async def drop(self, seconds: float) -> int:
        return int(_check(await self._http.post("/drop", json={"seconds": seconds}))["closed"])

    async def ban(self, banned: bool = True) -> None:
        _check(await self._http.post("/ban", json={"banned": banned}))

    async def conflict(self, seconds: float = 0.0) -> int:
        body = {"seconds": seconds} if seconds else {}
        return int(_check(await self._http.post("/conflict", json=body))["pages"])

    async def seed_history(self, **fields: Any) -> dict[str, Any]:
        return dict(_check(await self._http.post("/history", json=fields)))

    async def reads(self) -> list[dict[str, Any]]:
        return list(_check(await self._http.get("/reads"))["reads"])

    async def chatstates(self) -> list[dict[str, Any]]:
        return list(_check(await self._http.get("/chatstates"))["states"])

    async def set_registered(self, numbers: list[str]) -> list[str]:
        resp = await self._http.put(self._root + "/_sim/registered", json={"numbers": numbers})
        return list(_check(resp)["numbers"])
