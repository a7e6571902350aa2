"""The lifecycle's retry of WhatsApp-side disconnects (issue #15) on a real page, without Ray or Redis.

SessionLifecycle runs against a real PageSession (real Chromium, the bridge, the simulator): its HostPort
here does for it what the node's BrowserHost does (open and close the page, keep the saved auth state,
ask the page to take over), with the records (registry, events) kept in memory, so a small
WA_DISCONNECT_RETRY_S can be set per test. The phone side makes the disconnects: a conflict the other
WhatsApp Web lets go of, one it keeps taking back (`/conflict {seconds}`), and a dropped network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from wa_ray.actors.session_lifecycle import SessionLifecycle
from wa_ray.runtime import CHROMIUM_FLAGS, RuntimeConfig, default_chromium
from wa_ray.sessions.page import PageSession
from wa_ray.sessions.state import LIFECYCLE_SIGNALS, PageSignal, SessionState
from wa_ray.simulator.wa_web.testing import AsyncPhoneClient


class PagePort:
    """A HostPort over one real page at a time: what BrowserHost does for a session, minus Ray and Redis."""

    def __init__(self, browser: Browser, web_url: str) -> None:
        self._browser, self._web_url = browser, web_url
        self.life: SessionLifecycle | None = None
        self.page: PageSession | None = None
        self.saved: bytes | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.registry: dict[str, Any] = {}
        self.opens: list[float] = []
        self.takeovers: list[float] = []

    def _on_signal_of(self, page: PageSession) -> Any:
        async def on_signal(kind: PageSignal, payload: dict[str, Any]) -> None:
            # a replaced page speaks for nobody; the lifecycle's lock keeps them in order
            if self.page is page and kind in LIFECYCLE_SIGNALS and self.life is not None:
                asyncio.get_running_loop().create_task(self.life.on_page_signal(kind, payload))
        return on_signal

    async def attach(self) -> dict[str, Any] | None:
        return None

    async def open(self, restore: bool) -> None:
        await self.close()
        page = PageSession(self._browser, self._web_url, None)
        page.adopt(self._on_signal_of(page))
        self.page = page
        self.opens.append(time.monotonic())
        await page.open(self.saved if restore else None)

    async def close(self, unlinked: bool = False) -> None:
        page, self.page = self.page, None
        if page is not None:
            await page.close()

    async def save_auth(self) -> None:
        assert self.page is not None
        self.saved = await self.page.storage_state()

    async def delete_auth(self) -> None:
        self.saved = None

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append((type_, data))

    async def set_state(self, state: str, reason: str, fields: dict[str, Any]) -> None:
        self.registry.update(state=state, reason=reason, **fields)

    async def update(self, fields: dict[str, Any]) -> None:
        self.registry.update(fields)

    async def sync(self, reason: str) -> str | None:
        return None

    async def login(self) -> dict[str, Any]:
        return {"login": "qr", "phone": None}

    async def pairing_code(self, phone: str) -> str:
        raise AssertionError("QR login only here")

    async def takeover(self) -> bool:
        if self.page is None:
            return False
        self.takeovers.append(time.monotonic())
        return await self.page.takeover()

    def statuses(self) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == "session.status"]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type_]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        yield b
        await b.close()


def config(retry_s: float, grace_s: float = 1.0) -> RuntimeConfig:
    return RuntimeConfig(redis_url="redis://unused", web_url="http://127.0.0.1:1/", data_dir="/tmp",
                         disconnect_retry_s=retry_s, disconnect_grace_s=grace_s)


async def wait_until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.02)


async def linked(browser: Browser, web_sim: Any, number: str, cfg: RuntimeConfig
                 ) -> tuple[SessionLifecycle, PagePort, AsyncPhoneClient]:
    port = PagePort(browser, web_sim.url + "/")
    life = port.life = SessionLifecycle(cfg, "ws", number, port)
    await life.start()
    await wait_until(lambda: port.of("session.qr"))
    phone = AsyncPhoneClient(web_sim.url, number)
    await phone._http.post("/scan", json={"qr": port.of("session.qr")[0]["qr"]})
    await wait_until(lambda: life.state is SessionState.CONNECTED and port.saved is not None)
    port.events.clear()
    return life, port, phone


async def test_a_conflict_is_taken_over_and_the_session_comes_back(browser, web_sim) -> None:
    life, port, phone = await linked(browser, web_sim, "15553501", config(retry_s=30))
    try:
        assert await phone.conflict() == 1
        hit = time.monotonic()
        await wait_until(lambda: life.state is SessionState.DISCONNECTED)
        await wait_until(lambda: life.state is SessionState.CONNECTED)
        assert len(port.takeovers) == 1 and port.takeovers[0] - hit >= 1.9, "first takeover after its delay"
        assert [(s["state"], s["reason"]) for s in port.statuses()] == [
            ("disconnected", "socket CONFLICT"), ("connected", "connection restored")]
        assert port.of("session.disconnected") == [{"state": "disconnected", "reason": "socket CONFLICT"}]
        await asyncio.sleep(2.5)
        assert len(port.takeovers) == 1, "no attempt after the recovery"
        assert len(port.opens) == 1 and not port.of("session.qr")
    finally:
        await life.stop(purge=False)
        await phone.aclose()


async def test_a_conflict_that_keeps_coming_back_fails_the_session_at_the_bound(browser, web_sim) -> None:
    life, port, phone = await linked(browser, web_sim, "15553502", config(retry_s=7))
    try:
        assert await phone.conflict(seconds=60) == 1
        hit = time.monotonic()
        await wait_until(lambda: life.state is SessionState.FAILED, timeout=20)
        failed_after = time.monotonic() - hit
        assert 6.8 <= failed_after < 10, failed_after
        # takeovers at 2 and 6 s (2, then 4 more): each answered by CONFLICT again
        assert [round(t - hit) for t in port.takeovers] == [2, 6]
        reason = "conflict: another WhatsApp Web took over and takeover did not succeed within 7 s"
        assert [(s["state"], s["previous"], s["reason"]) for s in port.statuses()] == [
            ("disconnected", "connected", "socket CONFLICT"), ("failed", "disconnected", reason)]
        assert port.registry["state"] == "failed" and port.registry["reason"] == reason
        assert port.page is None, "a failed session's page is closed"
        devices = await phone.devices()
        assert devices and not devices[0]["online"]
        await asyncio.sleep(2.5)
        assert len(port.takeovers) == 2 and life.state is SessionState.FAILED, "nothing after giving up"
    finally:
        await life.stop(purge=False)
        await phone.aclose()


async def test_a_lost_socket_past_its_grace_is_reopened_from_saved_state(browser, web_sim) -> None:
    life, port, phone = await linked(browser, web_sim, "15553503", config(retry_s=30, grace_s=1))
    try:
        await phone.drop(4)  # the page reconnects by itself every 0.5 s, refused until the drop ends
        hit = time.monotonic()
        await wait_until(lambda: life.state is SessionState.RECONNECTING)
        await wait_until(lambda: len(port.opens) == 2, timeout=10)
        assert port.opens[1] - hit >= 2.9, "the reopen waits the grace, then the first delay"
        await wait_until(lambda: life.state is SessionState.CONNECTED, timeout=20)
        assert not port.of("session.qr"), "reopened from the saved state: no QR"
        assert port.statuses()[0] == {"state": "reconnecting", "previous": "connected", "reason": "socket TIMEOUT"}
        assert port.statuses()[-1]["state"] == "connected" and port.takeovers == []
    finally:
        await life.stop(purge=False)
        await phone.aclose()


async def test_a_lost_socket_that_stays_lost_fails_the_session_at_the_bound(browser, web_sim) -> None:
    life, port, phone = await linked(browser, web_sim, "15553504", config(retry_s=5, grace_s=1))
    try:
        await phone.drop(60)
        hit = time.monotonic()
        await wait_until(lambda: life.state is SessionState.FAILED, timeout=15)
        assert time.monotonic() - hit >= 4.8
        assert len(port.opens) == 2, "one reopen (at 3 s) within the 5 s bound"
        reason = "timeout: the connection to WhatsApp stayed lost and reopening did not restore it within 5 s"
        assert port.statuses()[-1] == {"state": "failed", "previous": "reconnecting", "reason": reason}
        assert port.page is None
    finally:
        await life.stop(purge=False)
        await phone.drop(0)
        await phone.aclose()
