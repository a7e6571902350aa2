"""One WhatsApp Web page in its own browser context, with the bridge installed. No Ray here.

This module owns the page protocol: the JS run against the bridge (sessions/bridge.js) and the WhatsApp
id format of our own messages. Callers mint a key, send under it, and read back what the page knows of
it; they never write page JS or WhatsApp ids themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from wa_ray.sessions.state import PageSignal
from wa_ray.tasks import background
from wa_ray.wa_ids import is_group_id, recipient_id, user_id

log = logging.getLogger(__name__)

Signal = Callable[[PageSignal, dict[str, Any]], Awaitable[None]]
BRIDGE_JS = resources.files("wa_ray.sessions").joinpath("bridge.js").read_text()
CONVERSATIONS_JS = resources.files("wa_ray.sessions").joinpath("bridge_conversations.js").read_text()
RESTORE_JS = resources.files("wa_ray.sessions").joinpath("storage_restore.js").read_text()
BLANK_HTML = "<html></html>"

# A fresh message key, and the page document it is minted in (a navigation or a crash gives a new
# document): one evaluate, so the pair is consistent.
_MINT_KEY = """async () => {
  const doc = window.__warayDoc || (window.__warayDoc = Math.random().toString(36).slice(2) + Date.now().toString(36));
  return [await window.__waray.newKey(), doc];
}"""
# The page's own record of a message id: null (never took it) or its ack (0 waiting for the server, 1+ taken,
# -1 refused), with the current document.
_ACK_AND_DOC = """(id) => {
  const store = typeof window.require === 'function' && window.require('WAWebCollections');
  const m = store && store.Msg.get(id);
  return [m ? (m.ack || 0) : null, window.__warayDoc || null];
}"""
_SEND = "(m) => window.__waray.send(m)"
_SEND_MANY = "(items) => window.__waray.sendMany(items)"
_FILE_SLOT = "(token) => window.__waray.fileSlot(token)"
_STATE = "window.__waray ? window.__waray.state() : null"
_PAIRING_CODE = "(phone) => window.__waray.requestPairingCode(phone, true)"
_TAKEOVER = "window.__waray ? window.__waray.takeover() : false"
PAIRING_CODE_PATTERN = re.compile(r"^[A-Z0-9]{8}$")
# Playwright's words for a page, context or browser that is gone, or a document replaced under the call.
_GONE_TEXTS = ("has been closed", "Target closed", "Execution context was destroyed", "navigation",
               "Target crashed", "crashed")


class PageGone(Exception):
    """The page (or its document) is not there to answer: the outcome of a send in flight is open."""


def chat_id(to: str) -> str:
    """The WhatsApp chat id of a recipient: a phone number's `@c.us` id, a WhatsApp id (a group, a `@lid`)
    as it is."""
    return recipient_id(to)


def outgoing_id(to: str, key: str, me: str | None = None) -> str:
    """The serialized id WhatsApp gives our message to `to` sent under `key` (fromMe, chat, key); in a group
    the key also names us, the participant (`me`: our phone number), as the bridge's MsgKey does."""
    chat = chat_id(to)
    if is_group_id(chat) and me:
        return f"true_{chat}_{key}_{user_id(me)}"
    return f"true_{chat}_{key}"


@dataclass(frozen=True)
class MintedKey:
    key: str
    document: str


@dataclass(frozen=True)
class PageAck:
    """What the page knows of one message id: `ack` None when it never took it."""

    ack: int | None
    document: str | None


@dataclass(frozen=True)
class PageSend:
    """The page's answer to a send: the message's serialized id (None for a reaction: WhatsApp keeps no
    message of ours for it), and whether the server refused it."""

    id: str | None
    refused: bool


@dataclass(frozen=True)
class PageMedia:
    """A media file to send: a plain 0600 file the browser reads from disk (never base64 through evaluate).

    Through a file input, not a route: Playwright's route.fulfill(path=...) reads the whole file into this
    process and base64s it into the protocol message (measured for 16 MB: this process's peak RSS +101 MB,
    against +0 MB for set_input_files, whose path the local browser opens itself)."""

    path: str
    mimetype: str
    filename: str | None = None


@dataclass(frozen=True)
class PageItem:
    """One message of any kind for the page. `number` is the recipient (a phone number or a WhatsApp id);
    `content` is what the bridge reads for the kind (the content dict, contacts as `vcards`);
    `quoted_id`/`target_id` are page message ids (serialized)."""

    number: str
    key: str
    kind: str
    content: dict[str, Any]
    quoted_id: str | None = None
    target_id: str | None = None
    media: PageMedia | None = None


class PairingFailed(Exception):
    """The page gave no pairing code (the message never carries one)."""


class TargetNotFound(Exception):
    """The message a reply quotes or a reaction is on is not known to this page."""


class PageSendError(Exception):
    """The page threw while sending one message (it may or may not hold it: ask ack_of)."""


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
        """Everything but the navigation: the context and the page (a renderer process starts), most of
        the time a session takes to show its first QR. A spare prepared ahead takes that off a new
        session's path, and off a reopened one's (its saved state is restored into it)."""
        self.context = await self._browser.new_context(
            viewport={"width": 800, "height": 600}, service_workers="block"
        )
        await self.context.expose_binding("__warayEmit", self._binding)
        await self.context.add_init_script(BRIDGE_JS)
        await self.context.add_init_script(CONVERSATIONS_JS)  # extends the bridge: runs after it
        self.page = await self.context.new_page()
        self.page.on("crash", lambda _p: self._fire(PageSignal.CRASH, {}))
        self.page.on("close", lambda _p: self._fire(PageSignal.PAGE_CLOSED, {}))

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
        gets the blank document until the restore is done). Not new_context(storage_state=...): that costs
        the browser process nearly twice the CPU per session, which many sessions reopening at once share."""
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
        try:
            signal = PageSignal(kind)
        except ValueError:  # a kind this side does not know has no one to hear it
            log.debug("page signal %r ignored", kind)
            return
        if self._on_signal is not None:
            await self._on_signal(signal, payload)

    def _fire(self, signal: PageSignal, payload: dict[str, Any]) -> None:
        if self._on_signal is not None:
            background(self._on_signal(signal, payload), f"page signal {signal}")

    # ------------------------------------------------------- send protocol
    async def mint_key(self) -> MintedKey:
        """A message key for a send not made yet, and the document it belongs to; raises PageGone."""
        key, document = await self.evaluate(_MINT_KEY)
        return MintedKey(key, document)

    async def ack_of(self, serialized: str) -> PageAck:
        """What this page holds of the message `serialized` (see outgoing_id); raises PageGone."""
        ack, document = await self.evaluate(_ACK_AND_DOC, serialized)
        return PageAck(ack, document)

    async def send(self, number: str, body: str, key: str, *, wait_until_sent: bool = True) -> PageSend:
        """Send `body` to `number` under `key`. Waiting, it answers once WhatsApp's server took the message
        or refused it; the bridge never sends a key it already holds. Raises PageGone."""
        result = await self.evaluate(_SEND, {"to": chat_id(number), "body": body, "keyId": key,
                                              "waitUntilMsgSent": wait_until_sent})
        return PageSend(result["id"], result.get("result") == "ERROR")

    async def send_many(self, items: list[PageItem], *, wait_until_sent: bool = True
                        ) -> list[PageSend | TargetNotFound | PageSendError]:
        """Several messages of any kind in one evaluate, in order; a result (or the exception it stands for)
        per item. Media files go into file inputs of the bridge first: the browser reads them from disk, so
        the bytes are in no Python or driver buffer on their way in. Raises PageGone."""
        payload = []
        for n, item in enumerate(items):
            entry: dict[str, Any] = {"to": chat_id(item.number), "keyId": item.key, "kind": item.kind,
                                     "content": item.content, "quotedId": item.quoted_id,
                                     "targetId": item.target_id, "waitUntilMsgSent": wait_until_sent}
            if item.media is not None:
                slot = f"m{n}"
                await self._fill_slot(slot, item.media.path)
                entry["media"] = {"slot": slot, "mimetype": item.media.mimetype, "filename": item.media.filename}
            payload.append(entry)
        results = await self.evaluate(_SEND_MANY, payload)
        return [_page_result(r) for r in results]

    async def send_item(self, item: PageItem, *, wait_until_sent: bool = True) -> PageSend:
        """One message of any kind; raises TargetNotFound, PageSendError or PageGone."""
        (result,) = await self.send_many([item], wait_until_sent=wait_until_sent)
        if isinstance(result, Exception):
            raise result
        return result

    async def _fill_slot(self, slot: str, path: str) -> None:
        page = self.page
        if page is None:
            raise PageGone("page is not open")
        try:
            handle = await page.evaluate_handle(_FILE_SLOT, slot)
            try:
                element = handle.as_element()
                if element is None:
                    raise PageSendError("the bridge gave no file input")
                await element.set_input_files(path)
            finally:
                await handle.dispose()
        except Exception as exc:
            if document_gone(exc):
                raise PageGone(str(exc)) from exc
            raise

    async def state(self) -> dict[str, Any] | None:
        return await self._page().evaluate(_STATE)

    async def takeover(self) -> bool:
        """Ask the page to take its account back from another WhatsApp Web (after CONFLICT or UNLAUNCHED);
        False when the page has no socket to ask yet. The outcome arrives later as a `state` signal.
        Raises PageGone."""
        return bool(await self.evaluate(_TAKEOVER))

    async def pairing_code(self, phone: str) -> str:
        """A pairing code for linking this page to `phone` (digits); raises PageGone, or PairingFailed when
        the page answers anything but an 8-character code (the code itself is never put in the error)."""
        if not phone.isdigit():
            raise PairingFailed("phone must be digits")
        try:
            code = await self.evaluate(_PAIRING_CODE, phone)
        except PageGone:
            raise
        except Exception as exc:
            raise PairingFailed(f"the page did not give a pairing code ({type(exc).__name__})") from None
        if not isinstance(code, str) or PAIRING_CODE_PATTERN.match(code) is None:
            raise PairingFailed("the page answered something that is not a pairing code")
        return code

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        """Run `script` in the page's current document; raises PageGone when there is none to answer."""
        page = self.page
        if page is None:
            raise PageGone("page is not open")
        try:
            return await page.evaluate(script, arg)
        except Exception as exc:
            if document_gone(exc):
                raise PageGone(str(exc)) from exc
            raise

    async def evaluate_json(self, script: str, arg: Any = None) -> Any:
        """`evaluate` for a large answer: the page sends it as one JSON string, parsed here by orjson.

        Playwright's own result encoding wraps every value in a typed object that its client then
        validates field by field: for a page of 50 chats that validation was most of the BrowserHost's CPU
        and of the call's time (py-spy, bench/results/README.md, 2026-12-06). A string is one value.
        Undefined fields are absent rather than None, so callers read with `.get`."""
        text = await self.evaluate(f"async (arg) => JSON.stringify((await ({script})(arg)) ?? null)", arg)
        return orjson.loads(text) if isinstance(text, str) else None

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


def _page_result(result: dict[str, Any]) -> PageSend | TargetNotFound | PageSendError:
    error = result.get("error")
    if error == "target_not_found":
        return TargetNotFound("the message it refers to is unknown to the page")
    if error:
        return PageSendError(str(result.get("message") or error)[:400])
    return PageSend(result.get("id"), result.get("result") == "ERROR")


def document_gone(exc: BaseException) -> bool:
    """Closed page/context/browser, a navigation under the call, or no page: the document is gone."""
    if isinstance(exc, PageGone):
        return True
    if isinstance(exc, RuntimeError) and "page is not open" in str(exc):
        return True
    return isinstance(exc, PlaywrightError) and any(s in str(exc) for s in _GONE_TEXTS)
