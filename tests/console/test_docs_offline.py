"""/docs renders in Chromium with no network but the service's own origin, under its strict CSP
(serve_app/docs_page.py): every request the page makes is checked to be same-origin (anything else is
aborted and fails the test), a CSP violation or a script error fails it, and the operations and the
webhook events of /openapi.json must show up."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Browser, Route, expect

from tests.console.conftest import TIMEOUT_MS, shot


async def test_docs_render_offline_under_a_strict_csp(service, browser: Browser, raw) -> None:
    origin = urlsplit(service.base_url)
    elsewhere: list[str] = []
    problems: list[str] = []
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        async def only_ours(route: Route) -> None:
            url = urlsplit(route.request.url)
            if (url.scheme, url.netloc) == (origin.scheme, origin.netloc) or url.scheme == "data":
                await route.continue_()
            else:  # what a machine without the internet would see
                elsewhere.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_ours)
        page = await context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                if msg.type == "error" or "Content Security Policy" in msg.text else None)
        answer = await page.goto(f"{service.base_url}/docs")
        assert answer is not None and answer.status == 200
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("wa-ray", timeout=TIMEOUT_MS)
        await expect(page.locator(".opblock").first).to_be_visible(timeout=TIMEOUT_MS)
        operations = await page.locator(".opblock").count()
        spec = (await raw.get("/openapi.json")).json()
        documented = sum(1 for item in spec["paths"].values() for m in item if m in ("get", "post", "put", "delete"))
        assert operations >= documented // 2, f"{operations} operations shown of {documented}"
        await expect(page.get_by_text("message.received").first).to_be_attached(timeout=TIMEOUT_MS)
        await shot(page, "docs-offline.png")
        assert not elsewhere, f"the page reached beyond its origin: {elsewhere}"
        assert not problems, problems
    finally:
        await context.close()
