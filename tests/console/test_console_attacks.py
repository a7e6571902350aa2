"""Attacks on /console from inside the browser, against the live service over loopback.

What a signed-in page (or a script injected into it) could try: reach another workspace's numbers with the
cookie it holds, plant markup through a push name or a message text, mutate without the CSRF header, act with
a read-only token, and keep using a token after signing out.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import TIMEOUT_MS, link, shot

pytestmark = pytest.mark.asyncio

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
PHONE = "15557301"
SENDER = "15557302"

FETCH = """async ([method, path, header]) => {
    const r = await fetch(path, {method, credentials: 'same-origin',
        headers: Object.assign({'Content-Type': 'application/json'}, header ? {'X-WA-Console': '1'} : {}),
        body: method === 'GET' ? undefined : '{}'});
    const body = await r.json().catch(() => ({}));
    return [r.status, (body.error || {}).code || null];
}"""


async def call(page: Page, method: str, path: str, header: bool = True) -> tuple[int, str | None]:
    status, code = await page.evaluate(FETCH, [method, path, header])
    return status, code


async def test_workspace_token_cannot_reach_another_workspace(service, api, open_console, unique_ws) -> None:
    mine, theirs = unique_ws, f"{unique_ws}-other"
    planted = await api.post(f"/v1/workspaces/{theirs}/sessions", json={"session_id": "secret-line"})
    assert planted.status_code in (200, 201), planted.text
    assert (await api.post(f"/v1/workspaces/{mine}/sessions", json={"session_id": "mine-1"})).status_code in (200, 201)
    _, page = await open_console(api, mine)
    try:
        await expect(page.locator('#numbers li[data-session-id="mine-1"]')).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.locator('#numbers li[data-session-id="secret-line"]')).to_have_count(0)
        await expect(page.locator("#all-tab")).to_be_hidden()
        assert await page.locator("#workspace").evaluate("e => e.readOnly")

        other = f"/v1/workspaces/{theirs}"
        refused = {
            ("GET", "/v1/workspaces"): None,  # answers, but only with the token's own workspace
            ("GET", f"{other}/sessions"): (404, "not_found"),
            ("GET", f"{other}/sessions/secret-line"): (404, "not_found"),
            ("GET", f"{other}/sessions/secret-line/stats"): (404, "not_found"),
            ("GET", f"{other}/campaigns"): (404, "not_found"),
            ("GET", f"{other}/events"): (404, "not_found"),
            ("POST", f"{other}/sessions/secret-line/restart"): (404, "not_found"),
            ("POST", f"{other}/sessions/secret-line/logout"): (404, "not_found"),
            ("PUT", f"{other}/sessions/secret-line"): (404, "not_found"),
            ("DELETE", f"{other}/sessions/secret-line"): (404, "not_found"),
        }
        for (method, path), expected in refused.items():
            got = await call(page, method, path)
            if expected is None:
                assert got[0] == 200
            else:
                assert got == expected, (method, path, got)
        listed = await page.evaluate("fetch('/v1/workspaces').then((r) => r.json())")
        assert listed == {"workspaces": [mine]}

        # typing another workspace into the page does nothing: the field is read-only and nothing else opens it
        await page.locator("#workspace").fill(theirs, force=True)
        await page.keyboard.press("Enter")
        await expect(page.locator('#numbers li[data-session-id="secret-line"]')).to_have_count(0)
        # their number is untouched
        assert (await api.get(f"{other}/sessions/secret-line")).status_code == 200
    finally:
        await api.delete(f"/v1/workspaces/{theirs}/sessions/secret-line")
        await api.delete(f"/v1/workspaces/{mine}/sessions/mine-1")


async def test_markup_in_a_push_name_or_a_message_renders_as_text(service, api, phone_api, open_console,
                                                                   unique_ws) -> None:
    ws = unique_ws
    _, page = await open_console(api, ws)
    try:
        await expect(page.locator("#stream")).to_have_text("stream open", timeout=TIMEOUT_MS)
        await link(api, phone_api, ws, "xss-1", PHONE, pushname=XSS)  # the account's own profile name
        c = page.locator('#numbers li[data-session-id="xss-1"]')
        await expect(c.locator(".state")).to_have_text("connected", timeout=TIMEOUT_MS)
        await expect(c.locator(".push-name")).to_have_text(XSS, timeout=TIMEOUT_MS)
        # a stranger writes markup: it is shown, not run
        assert (await phone_api.post(f"/_phone/{SENDER}/messages", json={"to": PHONE, "body": XSS})).status_code == 200
        await expect(page.locator("#inbound li").first).to_have_text(f"{SENDER}: {XSS}", timeout=TIMEOUT_MS)
        await shot(page, "console-xss.png")

        # after a reload the name comes from the listing (when the service keeps it) and is still text
        await page.reload()
        await expect(c.locator(".state")).to_have_text("connected", timeout=TIMEOUT_MS)
        listed = (await api.get(f"/v1/workspaces/{ws}/sessions/xss-1")).json()
        if "push_name" in listed:
            assert listed["push_name"] == XSS
            await expect(c.locator(".push-name")).to_have_text(XSS)
        assert await page.locator("#app img, #app script").count() == 0
        assert await page.evaluate("window.__xss") is None
    finally:
        await api.delete(f"/v1/workspaces/{ws}/sessions/xss-1")


async def test_unsafe_calls_without_the_console_header_are_refused(service, api, open_console, unique_ws) -> None:
    ws = unique_ws
    base = f"/v1/workspaces/{ws}"
    assert (await api.post(f"{base}/sessions", json={"session_id": "csrf-1"})).status_code in (200, 201)
    _, page = await open_console(api, ws)
    try:
        await expect(page.locator('#numbers li[data-session-id="csrf-1"]')).to_be_visible(timeout=TIMEOUT_MS)
        unsafe = [("POST", f"{base}/sessions"), ("POST", f"{base}/sessions/csrf-1/restart"),
                  ("POST", f"{base}/sessions/csrf-1/logout"), ("PUT", f"{base}/sessions/csrf-1"),
                  ("DELETE", f"{base}/sessions/csrf-1"), ("POST", f"{base}/campaigns/cmp_x/pause"),
                  ("POST", f"{base}/campaigns/cmp_x/resume"), ("POST", f"{base}/messages")]
        for method, path in unsafe:
            assert await call(page, method, path, header=False) == (403, "csrf"), (method, path)
        assert (await api.get(f"{base}/sessions/csrf-1")).status_code == 200  # the refused DELETE did nothing
        # the same cookie with the header is let through (so the header is the one thing that differs)
        assert (await call(page, "GET", f"{base}/sessions", header=False))[0] == 200  # safe calls need no header
        assert await call(page, "DELETE", f"{base}/sessions/csrf-1") == (204, None)
    finally:
        await api.delete(f"{base}/sessions/csrf-1")


async def test_read_only_console_cannot_act_and_sign_out_revokes(service, api, make_key, client_for, raw,
                                                                  open_console, unique_ws) -> None:
    ws = unique_ws
    base = f"/v1/workspaces/{ws}"
    assert (await api.post(f"{base}/sessions", json={"session_id": "ro-1"})).status_code in (200, 201)
    reader = client_for(await make_key("read", ws))
    _, page = await open_console(reader, ws)
    try:
        c = page.locator('#numbers li[data-session-id="ro-1"]')
        await expect(c).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.locator("#whoami")).to_contain_text("read")
        await expect(page.locator("#add-number")).to_be_disabled()
        for action in (".act-restart", ".act-logout", ".act-delete"):
            await expect(c.locator(action)).to_be_disabled()
        await expect(c.locator(".act-stats")).to_be_enabled()  # reading is what it may do
        for method, path in (("POST", f"{base}/sessions/ro-1/restart"), ("DELETE", f"{base}/sessions/ro-1"),
                             ("PUT", f"{base}/sessions/ro-1"), ("POST", f"{base}/sessions")):
            status, _ = await call(page, method, path)
            assert status == 403, (method, path, status)
        assert (await api.get(f"{base}/sessions/ro-1")).status_code == 200

        # signing out revokes the token itself: the page's cookie and the token are both dead
        await page.click("#signout")
        await expect(page.locator("#login")).to_be_visible()
        assert (await call(page, "GET", f"{base}/sessions"))[0] == 401
        again = await raw.post("/console/session", json={"token": page.wa_token}, headers={"X-WA-Console": "1"})
        assert (again.status_code, again.json()["error"]["code"]) == (403, "bad_token")
    finally:
        await api.delete(f"{base}/sessions/ro-1")
