"""One WhatsApp Web page in its own browser context, with the bridge installed. No Ray here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from playwright.async_api import Browser, BrowserContext, Page

from wa_ray.tasks import background

log = logging.getLogger(__name__)

Signal = Callable[[str, dict[str, Any]], Awaitable[None]]
BRIDGE_JS = resources.files("wa_ray.sessions").joinpath("bridge.js").read_text()
RESTORE_JS = resources.files("wa_ray.sessions").joinpath("storage_restore.js").read_text()
BLANK_HTML = "<html></html>"


class PageSession:
    def __init__(self, browser: Browser, web_url: str, on_signal: Signal | None) -> None:
        self._browser = browser
        self._web_url = web_url
        self._on_signal = on_signal
        self.context: BrowserContext | None = None
        self.page: Page | None = None

    @property
    def browser(self) -> Browser:
        return self._browser

    @property
    def prepared(self) -> bool:
        """A blank context with the bridge and a running renderer, waiting for its session."""
        return self.page is not None and self.page.url == "about:blank"

    async def prepare(self) -> None:
        """Everything but the navigation. Measured here: new_context ~60 ms and new_page ~350 ms (a
        renderer process starts) of a ~900 ms create -> QR under load; a spare prepared ahead takes that
        off a new session's path, and off a reopened one's (its saved state is restored into it)."""
        self.context = await self._browser.new_context(
            viewport={"width": 800, "height": 600}, service_workers="block"
        )
        await self.context.expose_binding("__warayEmit", self._binding)
        await self.context.add_init_script(BRIDGE_JS)
        self.page = await self.context.new_page()
        self.page.on("crash", lambda _p: self._fire("crash", {}))
        self.page.on("close", lambda _p: self._fire("page_closed", {}))

    def adopt(self, on_signal: Signal) -> None:
        self._on_signal = on_signal

    async def open(self, storage_state: bytes | None) -> None:
        if not self.prepared:
            await self.close()
            await self.prepare()
        if storage_state:
            await self._restore(orjson.loads(storage_state))
        await self._page().goto(self._web_url, wait_until="domcontentloaded")

    async def _restore(self, state: dict[str, Any]) -> None:
        """Saved auth state into this context, before the app loads: cookies, then each origin's storage
        written from a blank document of that origin (the app's own requests never leave: every request
        gets the blank document until the restore is done). Measured with 10 sessions reopening at once:
        Playwright's new_context(storage_state=...) took 0.52 s of the browser process's CPU per session,
        a blank context 0.29 s."""
        if state.get("cookies"):
            await self._context().add_cookies(state["cookies"])
        origins = [o for o in state.get("origins", []) if o.get("localStorage") or o.get("indexedDB")]
        if not origins:
            return
        page = self._page()

        async def blank(route: Any) -> None:
            await route.fulfill(body=BLANK_HTML, content_type="text/html")

        await page.route("**/*", blank)
        try:
            for origin in origins:
                await page.goto(origin["origin"], wait_until="domcontentloaded")
                await page.evaluate(RESTORE_JS, origin)
        finally:
            await page.unroute("**/*", blank)

    async def _binding(self, _source: Any, kind: str, payload: dict[str, Any]) -> None:
        if self._on_signal is not None:
            await self._on_signal(kind, payload)

    def _fire(self, kind: str, payload: dict[str, Any]) -> None:
        if self._on_signal is not None:
            background(self._on_signal(kind, payload), f"page signal {kind}")

    async def new_key(self) -> str:
        return await self._page().evaluate("window.__waray.newKey()")

    async def already_sent(self, serialized: str) -> bool:
        return await self._page().evaluate("(id) => window.__waray.alreadySent(id)", serialized)

    async def send(self, to: str, body: str, key_id: str) -> dict[str, Any]:
        return await self._page().evaluate(
            "(m) => window.__waray.send(m)", {"to": to, "body": body, "keyId": key_id}
        )

    async def state(self) -> dict[str, Any] | None:
        return await self._page().evaluate("window.__waray ? window.__waray.state() : null")

    async def storage_state(self) -> bytes:
        state = await self._context().storage_state(indexed_db=True)
        return orjson.dumps(state)

    async def reload(self) -> None:
        await self._page().goto(self._web_url, wait_until="domcontentloaded")

    async def close(self) -> None:
        if self.context is not None:
            context, self.context, self.page = self.context, None, None
            try:
                await context.close()
            except Exception:  # browser already gone: nothing left to free
                log.debug("context close failed", exc_info=True)

    def _context(self) -> BrowserContext:
        if self.context is None:
            raise RuntimeError("page is closed")
        return self.context

    def _page(self) -> Page:
        if self.page is None:
            raise RuntimeError("page is not open")
        return self.page
