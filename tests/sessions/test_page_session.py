"""sessions/ alone (no Ray): the bridge on a real Chromium page against the simulator, and the auth
state round trip through Playwright's storage_state(indexed_db=True), encrypted on the way."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from sessions.crypto import MasterKey
from sessions.page import PageSession
from storage.auth_store import FileAuthStore
from wa_ray.config import CHROMIUM_FLAGS, default_chromium


class Signals:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.seen.append((kind, payload))

    async def wait(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        for _ in range(int(timeout / 0.02)):
            for k, p in self.seen:
                if k == kind:
                    return p
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{kind} not signalled; saw {[k for k, _ in self.seen]}")


@pytest.fixture
async def browser():
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        yield b
        await b.close()


async def test_linked_state_round_trips_encrypted_and_reconnects_without_qr(browser, web_sim, tmp_path) -> None:
    first = Signals()
    page = PageSession(browser, web_sim.url + "/", first)
    await page.open(None)
    qr = (await first.wait("qr"))["qr"]
    async with httpx.AsyncClient(base_url=web_sim.url) as phone:
        assert (await phone.post("/_phone/15552001/scan", json={"qr": qr})).status_code == 200
    ready = await first.wait("ready")
    assert ready["me"]["number"] == "15552001"

    store = FileAuthStore(tmp_path, [MasterKey(os.urandom(32))])
    state = await page.storage_state()
    assert b"indexedDB" in state, "IndexedDB (the device credentials) is part of the saved state"
    await store.save("acme", "s1", state)
    blob_path = tmp_path / "sessions" / "acme" / "s1" / "auth.bin"
    assert oct(blob_path.stat().st_mode & 0o777) == "0o600"
    assert oct(blob_path.parent.stat().st_mode & 0o777) == "0o700"
    assert b"15552001" not in blob_path.read_bytes(), "encrypted at rest"
    await page.close()

    restored = Signals()
    again = PageSession(browser, web_sim.url + "/", restored)
    await again.open(await store.load("acme", "s1"))
    assert (await restored.wait("ready"))["me"]["number"] == "15552001"
    assert not [k for k, _ in restored.seen if k == "qr"], "restored without a QR"
    await again.close()


async def test_ids_never_reach_a_path(tmp_path) -> None:
    store = FileAuthStore(tmp_path, [MasterKey(os.urandom(32))])
    for bad in ("../etc", "a/b", "A", "", "x" * 65):
        with pytest.raises(ValueError):
            await store.save(bad, "s1", b"{}")
