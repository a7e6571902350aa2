"""/console as the numbers dashboard, driven in real Chromium against the live service and the simulator.

A person with a workspace console token adds a number with the QR modal (its countdown runs from the
`session.qr` event's `expires_in`), the phone scans, and the card turns connected live with the phone and the
push name; a test message goes out and one comes in; the per-number stats open; set primary moves the badge
(when the numbers API is on this service); restart, logout and delete (behind a confirm) act. A pairing-code
login shows the code from `session.pairing_code`. Screenshots of each screen land in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, Route, expect

from tests.console.conftest import TIMEOUT_MS, link, shot, wait_state

pytestmark = pytest.mark.asyncio

PHONE = "15557101"
RECIPIENT = "15557102"
CODE_PHONE = "15557103"
RISK_PHONE = "15557400"


def card(page: Page, sid: str):  # noqa: ANN201 - a Playwright Locator
    return page.locator(f'#numbers li[data-session-id="{sid}"]')


async def record_states(page: Page, sid: str) -> None:
    """Every text the card's state badge takes from now on, so a quick pass through a state is not missed."""
    await page.evaluate("""(sid) => {
        const el = document.querySelector(`#numbers li[data-session-id="${sid}"] .state`);
        window.__states = [];
        new MutationObserver(() => window.__states.push(el.textContent))
            .observe(el, {childList: true, characterData: true, subtree: true});
    }""", sid)


async def test_add_by_qr_live_status_stats_primary_and_actions(service, api, phone_api, open_console,
                                                               unique_ws) -> None:
    ws = unique_ws
    base = f"/v1/workspaces/{ws}/sessions"
    _, page = await open_console(api, ws)
    try:
        await expect(page.locator("#workspace")).to_have_value(ws)
        await expect(page.locator("#stream")).to_have_text("stream open", timeout=TIMEOUT_MS)
        await expect(page.locator("#numbers-empty")).to_be_visible()
        await expect(page.locator("#all-tab")).to_be_hidden()  # a workspace token has no cross-workspace view

        # --- add a number: the QR modal and its countdown
        await page.click("#add-number")
        await expect(page.locator("#add-dialog")).to_be_visible()
        await page.fill("#add-sid", "sales-1")
        await page.click("#add-go")
        await expect(page.locator("#qr-img")).to_be_visible(timeout=TIMEOUT_MS)
        await page.wait_for_function("() => { const i = document.querySelector('#qr-img');"
                                     " return i.complete && i.naturalWidth > 100; }", timeout=TIMEOUT_MS)
        countdown = page.locator("#link-countdown")
        await expect(countdown).to_have_text(re.compile(r"^Expires in \d+s$"), timeout=TIMEOUT_MS)
        first = int(await countdown.get_attribute("data-left") or 0)
        assert 1 < first <= 60, first  # from the event's expires_in (the simulator's first code lives 60 s)
        await page.wait_for_function("(n) => Number(document.querySelector('#link-countdown').dataset.left) < n",
                                     arg=first, timeout=5_000)  # it counts down
        await expect(page.locator("#link-state")).to_have_text(re.compile(r"^Scan code #\d+$"))
        await expect(card(page, "sales-1").locator(".state")).to_have_text("qr_required")
        await shot(page, "console-qr.png")

        # the phone scans the code the modal shows: the dialog closes and the card turns connected live
        qr = (await api.get(f"{base}/sales-1/qr")).json()["qr"]
        scanned = await phone_api.post(f"/_phone/{PHONE}/scan", json={"qr": qr, "pushname": "Sales One"})
        assert scanned.status_code == 200, scanned.text
        await expect(page.locator("#add-dialog")).to_be_hidden(timeout=TIMEOUT_MS)
        c = card(page, "sales-1")
        await expect(c.locator(".state")).to_have_text("connected", timeout=TIMEOUT_MS)
        await expect(c.locator(".phone")).to_have_text(PHONE)
        await expect(c.locator(".push-name")).to_have_text("Sales One")
        await expect(c.locator(".last-connected")).not_to_have_text("never")

        # a number made elsewhere (a backend's API call) shows up live, no reload
        assert (await api.post(base, json={"session_id": "sales-2"})).status_code in (200, 201)
        await expect(card(page, "sales-2").locator(".state")).to_have_text(
            re.compile(r"^(initializing|qr_required)$"), timeout=TIMEOUT_MS)
        await expect(card(page, "sales-2").locator(".phone")).to_have_text("–")

        # --- a test message out, one in
        await expect(page.locator("#send-from")).to_have_value("sales-1")
        await page.fill("#send-to", RECIPIENT)
        await page.fill("#send-text", "hello from the dashboard")
        await page.click("#send-btn")
        row = page.locator("#outbound tbody tr").first
        await expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^(delivered|read)$"), timeout=TIMEOUT_MS)
        inbox = (await phone_api.get(f"/_phone/{RECIPIENT}/inbox")).json()["messages"]
        assert [m["body"] for m in inbox].count("hello from the dashboard") == 1
        assert (await phone_api.post(f"/_phone/{RECIPIENT}/messages",
                                     json={"to": PHONE, "body": "hi dashboard"})).status_code == 200
        await expect(page.locator("#inbound li").first).to_have_text(f"{RECIPIENT}: hi dashboard", timeout=TIMEOUT_MS)
        if (await api.get(f"{base}/sales-1/stats?days=1")).status_code == 200:  # the card's day follows the sends
            await expect(c.locator(".today")).to_contain_text("1 sent", timeout=TIMEOUT_MS)
        if (await api.get(f"{base}/sales-1/ban-risk")).status_code == 200:  # evaluated after the send
            await expect(c.locator(".risk")).to_have_text(re.compile(r"^ban risk \d+$"), timeout=TIMEOUT_MS)
        await shot(page, "console.png")

        # --- per-number stats: the table when the stats API is there, a plain note when it is not
        await c.locator(".act-stats").click()
        await expect(page.locator("#stats-panel")).to_be_visible()
        await expect(page.locator("#stats-title")).to_have_text("Stats · sales-1")
        stats = await api.get(f"{base}/sales-1/stats?days=7")
        if stats.status_code == 404:
            await expect(page.locator("#stats-note")).to_have_text("Stats are not available on this service yet.")
        else:
            assert stats.status_code == 200, stats.text
            today = stats.json()["days"][-1]
            rows = page.locator("#stats-table tbody tr")
            await expect(rows).to_have_count(len(stats.json()["days"]), timeout=TIMEOUT_MS)
            shown = page.locator("#stats-table tbody tr", has_text=today["day"]).locator("td")
            await expect(shown.nth(1)).to_have_text(re.compile(r"^[1-9]\d*$"))  # the message sent above
            await expect(page.locator("#stats-table tfoot td").first).to_have_text("total")
        await shot(page, "console-stats.png")
        await page.click("#stats-close")
        await expect(page.locator("#stats-panel")).to_be_hidden()

        # --- set primary moves the badge (Part A); without that API the button is not offered
        probe = await api.put(f"{base}/sales-2", json={"primary": False})
        if probe.status_code in (404, 405):
            await expect(c.locator(".act-primary")).to_be_hidden()
        else:
            # a list read before the PUT, answering after it, must not paint the old primary back
            listed, release, landed = asyncio.Event(), asyncio.Event(), asyncio.Event()

            async def hold_the_list(route: Route) -> None:  # stays for the rest of the test: later reads pass
                answer = await route.fetch()
                listed.set()
                await release.wait()
                await route.fulfill(response=answer)
                landed.set()

            await page.route("**/sessions", hold_the_list)
            await page.click("#refresh-numbers")
            await asyncio.wait_for(listed.wait(), TIMEOUT_MS / 1000)
            await c.locator(".act-primary").click()
            await expect(c.locator(".primary-badge")).to_be_visible(timeout=TIMEOUT_MS)
            release.set()
            await asyncio.wait_for(landed.wait(), TIMEOUT_MS / 1000)
            await page.evaluate("() => new Promise((done) => setTimeout(done, 300))")  # the page reads the answer
            assert await c.locator(".primary-badge").is_visible()
            await expect(c.locator(".act-primary")).to_be_hidden()
            assert (await api.get(f"{base}/sales-1")).json()["primary"] is True
            await expect(page.locator("#numbers li").first).to_have_attribute("data-session-id", "sales-1")
            await card(page, "sales-2").locator(".act-primary").click()
            await expect(card(page, "sales-2").locator(".primary-badge")).to_be_visible(timeout=TIMEOUT_MS)
            await expect(c.locator(".primary-badge")).to_be_hidden()
            assert (await api.get(f"{base}/sales-1")).json()["primary"] is False
            assert (await api.get(f"{base}/sales-2")).json()["primary"] is True
            await shot(page, "console-primary.png")

        # --- restart: the page reopens from its saved login, the card passes through a non-connected state
        await record_states(page, "sales-1")
        await c.locator(".act-restart").click()
        await page.wait_for_function("() => window.__states.some((s) => s !== 'connected')", timeout=TIMEOUT_MS)
        await wait_state(api, ws, "sales-1", "connected")
        await expect(c.locator(".state")).to_have_text("connected", timeout=5_000)  # the card agrees with the registry
        await expect(page.locator("#error")).to_be_hidden()

        # --- logout: unlinked, the phone number is no longer shown
        await c.locator(".act-logout").click()
        await page.wait_for_function("() => window.__states.includes('logged_out')", timeout=TIMEOUT_MS)
        await expect(c.locator(".phone")).to_have_text("–", timeout=TIMEOUT_MS)
        assert (await api.get(f"{base}/sales-1")).json()["state"] != "connected"

        # --- delete asks first; Cancel keeps the number, Delete removes it
        await c.locator(".act-delete").click()
        await expect(page.locator("#confirm-dialog")).to_be_visible()
        await expect(page.locator("#confirm-text")).to_contain_text('Delete the number "sales-1"?')
        await shot(page, "console-delete.png")
        await page.click("#confirm-no")
        await expect(page.locator("#confirm-dialog")).to_be_hidden()
        await expect(c).to_be_visible()
        assert (await api.get(f"{base}/sales-1")).status_code == 200
        await c.locator(".act-delete").click()
        await page.click("#confirm-yes")
        await expect(c).to_have_count(0, timeout=TIMEOUT_MS)
        assert (await api.get(f"{base}/sales-1")).status_code == 404
        await expect(card(page, "sales-2")).to_be_visible()
    finally:
        await shot(page, "console-numbers.png")
        for sid in ("sales-1", "sales-2"):
            await api.delete(f"{base}/{sid}")


async def test_add_by_pairing_code(service, api, phone_api, open_console, unique_ws) -> None:
    ws = unique_ws
    _, page = await open_console(api, ws)
    try:
        await expect(page.locator("#stream")).to_have_text("stream open", timeout=TIMEOUT_MS)
        await page.click("#add-number")
        await page.fill("#add-sid", "by-code")
        await page.check('input[name="login"][value="code"]')
        await expect(page.locator("#add-phone")).to_be_visible()
        await page.fill("#add-phone", "12")  # checked before any call: a clear message, no request
        await page.click("#add-go")
        await expect(page.locator(".form-error")).to_have_text(re.compile("7 to 15 digits"))
        await page.fill("#add-phone", f"+{CODE_PHONE}")
        await page.click("#add-go")
        code = page.locator("#pairing-code")
        await expect(code).not_to_have_text("", timeout=TIMEOUT_MS)
        await expect(page.locator("#qr-box")).to_be_hidden()
        await expect(page.locator("#link-countdown")).to_have_text(re.compile(r"^Expires in \d+s$"))
        await shot(page, "console-pairing.png")
        assert (await api.get(f"/v1/workspaces/{ws}/sessions/by-code")).json()["phone"] == CODE_PHONE

        entered = await phone_api.post(f"/_phone/{CODE_PHONE}/pairing-code", json={"code": await code.text_content()})
        assert entered.status_code == 200, entered.text
        await expect(page.locator("#add-dialog")).to_be_hidden(timeout=TIMEOUT_MS)
        c = card(page, "by-code")
        await expect(c.locator(".state")).to_have_text("connected", timeout=TIMEOUT_MS)
        await expect(c.locator(".phone")).to_have_text(CODE_PHONE)
        record = await wait_state(api, ws, "by-code", "connected")
        if "primary" in record:  # the first number of a workspace can be made primary straight away
            await expect(c.locator(".act-primary")).to_be_visible()
    finally:
        await api.delete(f"/v1/workspaces/{ws}/sessions/by-code")


async def test_phone_sized_screen_and_keyboard(service, api, open_console, unique_ws) -> None:
    ws = unique_ws
    base = f"/v1/workspaces/{ws}/sessions"
    assert (await api.post(base, json={"session_id": "mobile-1"})).status_code in (200, 201)
    _, page = await open_console(api, ws, viewport={"width": 390, "height": 844})
    try:
        c = card(page, "mobile-1")
        await expect(c.locator(".state")).to_have_text(re.compile(r"^(initializing|qr_required)$"), timeout=TIMEOUT_MS)
        # nothing is wider than the screen: no sideways scrolling of the page, every action within reach
        wide = await page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getClientRects().length &&
                e.getBoundingClientRect().right + parseFloat(getComputedStyle(e).marginRight) > 390.5)
            .map((e) => e.tagName + '#' + e.id + '.' + e.className)""")
        assert not wide and await page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        for button in await c.locator(".actions button:visible").all():
            box = await button.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        await shot(page, "console-phone.png")

        # keyboard only: Tab reaches "Add number", Enter opens the dialog with the name field focused, Esc closes
        await page.locator("body").focus()
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement && document.activeElement.id") == "add-number":
                break
        else:
            raise AssertionError("Tab never reached the Add number button")
        await page.keyboard.press("Enter")
        await expect(page.locator("#add-dialog")).to_be_visible()
        assert await page.evaluate("document.activeElement.id") == "add-sid"
        box = await page.locator("#add-dialog").bounding_box()
        assert box and box["width"] <= 390
        await shot(page, "console-phone-add.png")
        await page.keyboard.press("Escape")
        await expect(page.locator("#add-dialog")).to_be_hidden()

        # the Stats button of the card works from the keyboard too
        await c.locator(".act-stats").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#stats-panel")).to_be_visible()
    finally:
        await api.delete(f"{base}/mobile-1")


async def test_ban_risk_badge_live_pause_and_resume(service, api, phone_api, open_console, unique_ws) -> None:
    ws = unique_ws
    if (await api.get(f"/v1/workspaces/{ws}/ban-risk")).status_code == 404:
        pytest.skip("the ban-risk API (issue #15 part B) is not on this service")
    # the ban-risk tests' arithmetic: 4 sends to new contacts, no replies, per_hour 5, a cap of 4 -> score 65
    assert (await api.put(f"/v1/workspaces/{ws}/pacing", json={"steps": [[100, 0.0]], "per_hour": 5,
                                                              "typing": False})).status_code == 200
    policy = {"daily_new_contacts": 4, "warn_at": [20, 40], "pause_at": 60, "resume_cooldown_s": 600}
    assert (await api.put(f"/v1/workspaces/{ws}/ban-risk", json=policy)).status_code == 200
    _, page = await open_console(api, ws)
    try:
        await expect(page.locator("#stream")).to_have_text("stream open", timeout=TIMEOUT_MS)
        await link(api, phone_api, ws, "risky", RISK_PHONE)
        c = card(page, "risky")
        await expect(c.locator(".state")).to_have_text("connected", timeout=TIMEOUT_MS)
        await expect(c.locator(".risk")).to_be_hidden()
        for n in range(4):
            sent = await api.post(f"/v1/workspaces/{ws}/messages",
                                  json={"session_id": "risky", "to": f"1555740{n + 1}", "text": f"offer {n}"})
            assert sent.status_code in (200, 201, 202), sent.text
        # the session.ban_risk and session.paused events reach the card without a reload
        await expect(c.locator(".risk")).to_have_attribute("data-level", "critical", timeout=TIMEOUT_MS)
        await expect(c.locator(".risk")).to_have_text(re.compile(r"^ban risk \d+$"))
        await expect(c.locator(".paused")).to_have_text("paused: ban_risk", timeout=TIMEOUT_MS)
        await shot(page, "console-ban-risk.png")

        # after a reload the badge and the pause come from the API
        await page.reload()
        await expect(c.locator(".risk")).to_have_attribute("data-level", "critical", timeout=TIMEOUT_MS)
        await expect(c.locator(".paused")).to_be_visible(timeout=TIMEOUT_MS)
        await c.locator(".act-resume").click()
        await expect(c.locator(".paused")).to_be_hidden(timeout=TIMEOUT_MS)
        await expect(page.locator("#error")).to_be_hidden()
        assert (await api.get(f"/v1/workspaces/{ws}/sessions/risky/ban-risk")).json()["paused"] is False
    finally:
        await api.delete(f"/v1/workspaces/{ws}/sessions/risky")
