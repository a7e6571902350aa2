"""Fixtures of the console tests: the API tests' keys and clients, a Debian Chromium driven by Playwright, and
a helper that signs a browser page into /console with a freshly minted console token.

Everything runs against the shared live service (real Serve, Ray, Redis, the WhatsApp Web simulator); the
browser is the system Chromium the service itself uses, so no downloaded browser is involved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.api.conftest import client_for, key_store, live_redis, make_key, raw, unique_ws  # noqa: F401
from wa_ray.config import CHROMIUM_FLAGS, default_chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 45_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium per module: each test's pages live in browser contexts of their own (`open_console`
    closes them), which share no cookies, storage or cache; launching Playwright and Chromium per test cost
    more than most of these tests."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS),
                                           headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    """Keep what the screen shows as a test artifact (tests/artifacts/console-*.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


ConsoleOpener = Callable[..., Awaitable[tuple[BrowserContext, Page]]]


@pytest.fixture
async def open_console(service, browser: Browser) -> AsyncIterator[ConsoleOpener]:
    """open_console(client, workspace_id=None, viewport=...) -> (context, page), signed in and showing the app.

    `client` mints the token (its role bounds the token's); the page fails the test on a CSP violation or an
    uncaught script error, so a console that breaks silently cannot pass."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    async def opener(client: httpx.AsyncClient, workspace_id: str | None = None,
                     viewport: dict[str, int] | None = None) -> tuple[BrowserContext, Page]:
        body = {"ttl_s": 900} | ({"workspace_id": workspace_id} if workspace_id else {})
        minted = await client.post("/v1/console-tokens", json=body)
        assert minted.status_code == 201, minted.text
        context = await browser.new_context(viewport=viewport or {"width": 1100, "height": 900})
        contexts.append(context)
        page = await context.new_page()
        page.wa_token = minted.json()["token"]  # type: ignore[attr-defined]  (for revocation checks)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(m.text)
                if m.type == "error" and "Content Security Policy" in m.text else None)
        await page.goto(f"{service.base_url}{minted.json()['url']}")
        await expect(page.locator("#app")).to_be_visible(timeout=TIMEOUT_MS)
        assert "token" not in page.url
        return context, page

    yield opener
    for context in contexts:
        await context.close()
    assert not problems, problems


async def wait_state(api: httpx.AsyncClient, ws: str, sid: str, wanted: str, timeout_s: float = 45) -> dict:
    """Poll the registry (signed admin client) until the session is in `wanted`."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    record: dict = {}
    while time.monotonic() < deadline:
        r = await api.get(f"/v1/workspaces/{ws}/sessions/{sid}")
        record = r.json() if r.status_code == 200 else {}
        if record.get("state") == wanted:
            return record
        await asyncio.sleep(0.3)
    raise AssertionError(f"{ws}/{sid} never reached {wanted}: {record}")


async def link(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, ws: str, sid: str, phone: str,
               pushname: str | None = None) -> dict:
    """Create a session through the API and let the simulator's phone scan its QR; returns the connected record."""
    created = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": sid})
    assert created.status_code in (200, 201), created.text
    await wait_state(api, ws, sid, "qr_required")
    qr = (await api.get(f"/v1/workspaces/{ws}/sessions/{sid}/qr")).json()["qr"]
    body = {"qr": qr} | ({"pushname": pushname} if pushname else {})
    scanned = await phone_api.post(f"/_phone/{phone}/scan", json=body)
    assert scanned.status_code == 200, scanned.text
    return await wait_state(api, ws, sid, "connected")
