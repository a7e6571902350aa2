"""The /console page end to end in real Chromium against the live service and the WhatsApp Web simulator.

A backend mints a console token; a person opens the console with it, picks the
workspace, clicks Connect, sees the QR, the phone scans it, the status turns
connected with the phone number, a test message is sent and acknowledged, an
inbound message shows up, Disconnect unlinks, and signing out revokes the token.
Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from wa_ray.config import CHROMIUM_FLAGS, default_chromium

pytestmark = pytest.mark.asyncio

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE = "15557001"
RECIPIENT = "15557002"
TIMEOUT_MS = 45_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS),
                                           headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_console_links_sends_receives_and_disconnects(service, api, phone_api, browser, unique_ws,
                                                            raw) -> None:
    minted = await api.post("/v1/console-tokens", json={"workspace_id": unique_ws, "ttl_s": 600})
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    try:
        await page.goto(f"{service.base_url}{minted.json()['url']}")
        await expect(page.locator("#app")).to_be_visible(timeout=TIMEOUT_MS)
        # the token left the address bar, and scripts cannot read the cookie that now holds it
        assert "token" not in page.url
        assert token not in await page.evaluate("document.cookie")
        await expect(page.locator("#workspace")).to_have_value(unique_ws)
        await expect(page.locator("#whoami")).to_contain_text("workspace")

        await page.fill("#session", "console")
        await page.click("#connect")
        await expect(page.locator("#state")).to_have_text("qr_required", timeout=TIMEOUT_MS)
        qr_img = page.locator("#qr-img")
        await expect(qr_img).to_be_visible(timeout=TIMEOUT_MS)
        await page.wait_for_function("() => { const i = document.querySelector('#qr-img');"
                                     " return i.complete && i.naturalWidth > 100; }", timeout=TIMEOUT_MS)
        await expect(page.locator("#stream")).to_have_text("open")
        await shot(page, "console-qr.png")

        # the phone scans the code the page shows (the console's image is rendered from this raw string)
        qr = (await api.get(f"/v1/workspaces/{unique_ws}/sessions/console/qr")).json()["qr"]
        scan = await phone_api.post(f"/_phone/{PHONE}/scan", json={"qr": qr})
        assert scan.status_code == 200, scan.text
        await expect(page.locator("#state")).to_have_text("connected", timeout=TIMEOUT_MS)
        await expect(page.locator("#phone")).to_have_text(PHONE, timeout=TIMEOUT_MS)
        await expect(page.locator("#qr-box")).to_be_hidden()

        await page.fill("#send-to", RECIPIENT)
        await page.fill("#send-text", "hello from the console")
        await page.click("#send-btn")
        row = page.locator("#outbound tbody tr").first
        await expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^(delivered|read)$"), timeout=TIMEOUT_MS)
        inbox = (await phone_api.get(f"/_phone/{RECIPIENT}/inbox")).json()["messages"]
        assert [m["body"] for m in inbox].count("hello from the console") == 1

        assert (await phone_api.post(f"/_phone/{RECIPIENT}/messages",
                                     json={"to": PHONE, "body": "hi console"})).status_code == 200
        await expect(page.locator("#inbound li").first).to_have_text(f"{RECIPIENT}: hi console",
                                                                      timeout=TIMEOUT_MS)
        await shot(page, "console.png")

        await page.click("#disconnect")
        await expect(page.locator("#state")).to_have_text("logged_out", timeout=TIMEOUT_MS)
        await expect(page.locator("#phone")).to_have_text("–")

        await page.click("#signout")
        await expect(page.locator("#login")).to_be_visible()
        # signing out revoked the token itself, not just the cookie
        again = await raw.post("/console/session", json={"token": token}, headers={"X-WA-Console": "1"})
        assert again.status_code == 403 and again.json()["error"]["code"] == "bad_token"
        assert not [e for e in console_errors if "Content Security Policy" in e]
    finally:
        await shot(page, "console-final.png")
        await context.close()
        await api.delete(f"/v1/workspaces/{unique_ws}/sessions/console")
