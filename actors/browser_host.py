"""BrowserHost: the one Playwright driver and one Chromium of a node.

Every session on the node gets a context here (~57-79 MB each, against
~313 MB for a browser of its own). The host also runs each session's
data plane (sender loop, inbound and acks) against Redis, so messages never
cross Ray RPC. Lifecycle signals go to the session's owner: its own
SessionActor (`WA_SESSION_HOSTING=actor`), or, with `host` hosting, its
SessionLifecycle grain living here in the host, which saves a Ray worker
process per session (~57 MB private and ~1.2 s to start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from typing import TYPE_CHECKING

import ray

from wa_ray.actors.session_lifecycle import SessionLifecycle
from wa_ray.sessions.state import LIFECYCLE_SIGNALS, MESSAGE_CHANGE_SIGNALS, UNSENDABLE_SIGNALS, PageSignal
from wa_ray import NAMESPACE, session_actor_name
from wa_ray.events import Event
from wa_ray.runtime import RuntimeConfig, chromium_launch_flags
from wa_ray.tasks import background

# Only the host's own process imports the data plane, Playwright and Redis (in BrowserHost's methods):
# every process that holds a BrowserHost handle imports this module, because Ray loads an actor's class to
# build a handle to it, and every SessionActor holds one. Imported here, they cost each SessionActor
# process ~36 MB of private memory it never uses (bench/results/README.md, 2026-12-06).
if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

    from wa_ray.actors.conversations import ConversationCalls
    from wa_ray.actors.outbound import SessionSender
    from wa_ray.actors.session_sync import SessionSync
    from wa_ray.sessions.page import PageSession
    from wa_ray.storage.media_pending import PendingMedia

log = logging.getLogger(__name__)

# Grains starting at once (each opens a page): after a host restart every grain comes back together, and
# the supervisor's own reopen calls arrive at the same moment; like its restore at boot, a few at a time.
ACTIVATE_CONCURRENCY = 4


# Lifecycle signals a preopened page keeps for its owner-to-be; a page loading to its first QR says a few.
PENDING_SIGNALS_MAX = 64

# A logout or delete through the API waits this long, at most, for the sender's loop to end and for the page's
# judgement of what it held `sending`; past it the page is closed anyway (those messages are then judged when
# the session is linked again: another document, failed `unconfirmed`).
JUDGE_ON_CLOSE_S = 10.0


@dataclass
class HostedSession:
    ws: str
    sid: str
    owner: Any  # the session's state owner: a SessionActor handle, its SessionLifecycle grain here, or None
    page: PageSession
    sender: SessionSender
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # Signals of a page preopened before its owner existed (`preopen`), in order; the owner takes them on attach.
    pending: list[tuple[PageSignal, dict[str, Any]]] = field(default_factory=list)

    def signal(self, kind: PageSignal, payload: dict[str, Any]) -> None:
        """Fire and forget, in order: the owner's lock serialises its handling either way."""
        if self.owner is None:
            if len(self.pending) < PENDING_SIGNALS_MAX:
                self.pending.append((kind, payload))
            return
        if isinstance(self.owner, SessionLifecycle):
            background(self.owner.on_page_signal(kind, payload), f"signal {kind} of {self.ws}/{self.sid}")
        else:
            self.owner.on_page_signal.remote(kind, payload)

    async def judge_held(self) -> None:
        """The link ends with the close that follows: once the sender's loop has ended (so nothing sends
        meanwhile), the page, still open, judges what the sender held `sending` (SessionSender.judge_unlinked).
        Never raises: the close goes on."""
        try:
            async with asyncio.timeout(JUDGE_ON_CLOSE_S):
                if self.tasks:
                    await asyncio.wait(self.tasks)
                await self.sender.judge_unlinked()
        except Exception as exc:
            log.warning("%s/%s: held messages not judged before the page closed (%r); they are when it is "
                        "linked again", self.ws, self.sid, exc)


class LocalPort:
    """A grain's way to its page and records: plain calls on the host it lives in."""

    def __init__(self, host: BrowserHost, ws: str, sid: str) -> None:
        self._host, self._ws, self._sid = host, ws, sid
        self.owner: SessionLifecycle | None = None

    async def attach(self) -> dict[str, Any] | None:
        return await self._host.attach(self._ws, self._sid, self.owner)

    async def open(self, restore: bool) -> None:
        await self._host.open_session(self._ws, self._sid, self.owner, restore)

    async def close(self, unlinked: bool = False) -> None:
        await self._host.close_session(self._ws, self._sid, unlinked)

    async def save_auth(self) -> None:
        await self._host.save_auth(self._ws, self._sid)

    async def delete_auth(self) -> None:
        await self._host.delete_auth(self._ws, self._sid)

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        await self._host.publish(self._ws, self._sid, type_, data)

    async def set_state(self, state: str, reason: str, fields: dict[str, Any]) -> None:
        await self._host.set_state(self._ws, self._sid, state, reason, fields)

    async def update(self, fields: dict[str, Any]) -> None:
        await self._host.update_registry(self._ws, self._sid, fields)

    async def login(self) -> dict[str, Any]:
        return await self._host.login_of(self._ws, self._sid)

    async def pairing_code(self, phone: str) -> str:
        return await self._host.pairing_code(self._ws, self._sid, phone)

    async def takeover(self) -> bool:
        return await self._host.takeover(self._ws, self._sid)

    async def sync(self, reason: str) -> str | None:
        return await self._host.sync(self._ws, self._sid, reason)


# Ray restarts a dead host in place (same handle for every SessionActor); the fresh incarnation has no
# pages, so it tells the sessions registered on its node to reopen from saved state. The host announces
# this itself: a supervisor that was down at the time would otherwise never learn of it.
@ray.remote(num_cpus=0, max_concurrency=10_000, max_restarts=-1)
class BrowserHost:
    async def __init__(self, config: RuntimeConfig) -> None:
        self._config = config
        self._incarnation = uuid.uuid4().hex
        from wa_ray.actors.inbound import InboundRecorder
        from wa_ray.storage.auth_store import open_auth_store
        from wa_ray.storage.events import EventLog
        from wa_ray.storage.redis_client import connect
        from wa_ray.storage.registry import SessionRegistry
        from wa_ray.storage.stream_watch import StreamWatch

        self._redis = connect(config.redis_url)
        self._watch = StreamWatch(self._redis)  # one blocking read wakes every hosted session's sender
        self._inbound = InboundRecorder(self._redis, config)
        self._events = EventLog(self._redis)
        self._registry = SessionRegistry(self._redis)
        self._auth = open_auth_store(config, self._redis)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()
        self._sessions: dict[tuple[str, str], HostedSession] = {}
        self._session_locks: dict[tuple[str, str], asyncio.Lock] = {}  # one open or close of a session at a time
        self._grains: dict[tuple[str, str], SessionLifecycle] = {}
        self._closing = False  # shutting down: no grain may start again behind our back
        self._spares: list[PageSession] = []  # prepared blank pages for new sessions (PageSession.prepare)
        self._refilling: asyncio.Task[None] | None = None
        self._spares_used = 0
        self._preopened_taken = 0  # preopened pages an actor attached to
        self._opening = asyncio.Semaphore(ACTIVATE_CONCURRENCY)
        # made at first use (their modules load only in a host that syncs or lists)
        self._syncs: SessionSync | None = None
        self._conversation_calls: ConversationCalls | None = None
        if ray.get_runtime_context().was_current_actor_reconstructed:
            self._announce = asyncio.get_running_loop().create_task(self._tell_sessions_to_reopen())

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is None or not self._browser.is_connected():
                if self._playwright is None:
                    from playwright.async_api import async_playwright

                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self._config.chromium, args=chromium_launch_flags(self._config.chromium_flags),
                    headless=True,
                )
                self._browser.on("disconnected", lambda _b: self._on_browser_gone())
            return self._browser

    async def warm(self) -> dict[str, Any]:
        """Launch the browser before the first session asks, so the first QR is fast."""
        await self._ensure_browser()
        await self._refill_spares()
        return await self.ping()

    def _take_spare(self, browser: Browser) -> PageSession | None:
        while self._spares:
            spare = self._spares.pop()
            if spare.prepared and spare.browser is browser:
                self._spares_used += 1
                self._spares_changed()
                return spare
            background(spare.close(), "stale spare close")
        self._spares_changed()
        return None

    def _spares_changed(self) -> None:
        if self._config.spare_pages and not self._closing and (self._refilling is None or self._refilling.done()):
            self._refilling = background(self._refill_spares(), "spare pages refill")

    async def _refill_spares(self) -> None:
        from wa_ray.sessions.page import PageSession

        while len(self._spares) < self._config.spare_pages and not self._closing:
            browser = await self._ensure_browser()
            spare = PageSession(browser, self._config.web_url, None)
            try:
                await spare.prepare()
            except Exception:  # the browser went away meanwhile; the next take refills
                await spare.close()
                return
            self._spares.append(spare)

    async def open_session(self, ws: str, sid: str, owner: Any, restore: bool) -> None:
        """Give the session a new page (and a new sender), from its saved auth state when `restore`;
        whatever it had here is closed first.

        Opens and closes of one session run one at a time, so the last open wins and every earlier page
        is closed whole. They can be asked for together (a SessionActor killed mid-open and its
        successor's start, both waiting for a browser launch); overlapped, an open could replace a page
        whose context does not exist yet to close, and that page would load anyway, take the WhatsApp
        device over, and keep a sender whose heartbeat makes the intent it holds look owned forever
        (actors/outbound.py)."""
        from wa_ray.actors.outbound import SessionSender
        from wa_ray.sessions.page import PageSession

        if self._closing:
            raise RuntimeError("the browser host is shutting down")
        key = (ws, sid)
        async with self._session_lock(key):
            await self._close_key(key)
            storage_state = await self._auth.load(ws, sid) if restore else None
            browser = await self._ensure_browser()
            hosted: HostedSession | None = None

            async def on_signal(kind: PageSignal, payload: dict[str, Any]) -> None:
                if hosted is not None and self._sessions.get(key) is hosted:  # a replaced page speaks for nobody
                    await self._route(hosted, kind, payload)

            page = self._take_spare(browser) or PageSession(browser, self._config.web_url, None)
            page.adopt(on_signal)
            sender = SessionSender(self._redis, ws, sid, page, self._config, self._watch)
            hosted = HostedSession(ws, sid, owner, page, sender)
            self._sessions[key] = hosted
            hosted.tasks.append(asyncio.get_running_loop().create_task(hosted.sender.run()))
            try:
                await page.open(storage_state)
            except Exception:
                await self._close_key(key)
                if owner is None and hosted.owner is not None:
                    # preopened, and its actor attached meanwhile: it waits for this page's signals, so it
                    # must hear that there is no page (it reconnects, opening one itself)
                    hosted.signal(PageSignal.CRASH, {"reason": "page did not open"})
                raise

    def _session_lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._session_locks.get(key)
        if lock is None:
            lock = self._session_locks[key] = asyncio.Lock()
        return lock

    async def preopen(self, ws: str, sid: str) -> None:
        """Open a brand-new session's page before its SessionActor process is up (which takes most of a
        second): the page loads to its first QR meanwhile, and its signals wait in `pending` until the
        actor attaches. A failed open leaves nothing, and the actor then opens the page itself."""
        try:
            await self.open_session(ws, sid, None, False)
        except Exception as exc:
            log.info("preopen of %s/%s failed (%s); its actor opens it", ws, sid, exc)

    async def attach(self, ws: str, sid: str, owner: Any) -> dict[str, Any] | None:
        """A SessionActor takes over a page that outlived its predecessor, or one preopened for it.

        None when there is no live page to take over, so the caller opens one: a page that died while
        the session had no actor (the browser's crash signal went to the dead one) is not live. A
        preopened page answers `{"preopened": True, "signals": [...]}` without being asked its state
        (it may still be loading): the owner replays those signals, and every later one goes to it."""
        hosted = self._sessions.get((ws, sid))
        if hosted is None:
            return None
        if hosted.owner is None:
            hosted.owner = owner
            self._preopened_taken += 1
            signals, hosted.pending = hosted.pending, []
            return {"preopened": True, "signals": [[kind.value, payload] for kind, payload in signals]}
        hosted.owner = owner
        try:
            return await hosted.page.state()
        except Exception as exc:  # closed, crashed or mid-open: nothing to take over
            log.info("attach %s/%s: page not live (%s)", ws, sid, exc)
            return None

    # ------------------------------------------- a session's records (its owner asks)
    async def save_auth(self, ws: str, sid: str) -> None:
        await self._auth.save(ws, sid, await self._sessions[(ws, sid)].page.storage_state())

    async def delete_auth(self, ws: str, sid: str) -> None:
        await self._auth.delete(ws, sid)

    async def publish(self, ws: str, sid: str, type_: str, data: dict[str, Any]) -> None:
        await self._events.publish(Event(type_, ws, sid, data))

    async def set_state(self, ws: str, sid: str, state: str, reason: str, fields: dict[str, Any]) -> None:
        await self._registry.set_state(ws, sid, state, reason=reason, **fields)

    async def update_registry(self, ws: str, sid: str, fields: dict[str, Any]) -> None:
        await self._registry.update(ws, sid, **fields)

    async def login_of(self, ws: str, sid: str) -> dict[str, Any]:
        """How the session links: `{"login": "qr"|"code", "phone": digits|None}` from its registry record."""
        record = await self._registry.get(ws, sid) or {}
        code = record.get("login") == "code" and (record.get("phone") or "").isdigit()
        return {"login": "code", "phone": record["phone"]} if code else {"login": "qr", "phone": None}

    async def pairing_code(self, ws: str, sid: str, phone: str) -> str:
        """A pairing code from the session's page (PageSession.pairing_code); raises when there is no page."""
        hosted = self._sessions.get((ws, sid))
        if hosted is None:
            raise RuntimeError("the session has no page")
        return await hosted.page.pairing_code(phone)

    async def takeover(self, ws: str, sid: str) -> bool:
        """Ask the session's page to take its account back (PageSession.takeover); False without a page."""
        hosted = self._sessions.get((ws, sid))
        if hosted is None:
            return False
        return await hosted.page.takeover()

    async def close_session(self, ws: str, sid: str, unlinked: bool = False) -> bool:
        """Close the session's page; `unlinked` (HostPort.close): its sender's `sending` messages are judged by
        the page first."""
        async with self._session_lock((ws, sid)):  # an open in progress finishes first, then is closed whole
            return await self._close_key((ws, sid), unlinked)

    async def _close_key(self, key: tuple[str, str], unlinked: bool = False) -> bool:
        hosted = self._sessions.pop(key, None)
        if hosted is None:
            return False
        await self._close(hosted, unlinked)
        return True

    @staticmethod
    async def _close(hosted: HostedSession, unlinked: bool = False) -> None:
        hosted.sender.stop()  # ends its loop even if the cancellation below never reaches it
        for task in hosted.tasks:
            task.cancel()
        if unlinked:
            await hosted.judge_held()
        await hosted.page.close()

    # ------------------------------------------------- grains (host hosting)
    async def activate(self, ws: str, sid: str) -> str:
        """Host the session's lifecycle here; idempotent (a live grain just reports its state)."""
        key = (ws, sid)
        grain = self._grains.get(key)
        if grain is not None:
            return grain.state.value
        if self._closing:
            return "stopped"
        port = LocalPort(self, ws, sid)
        grain = port.owner = SessionLifecycle(self._config, ws, sid, port)
        self._grains[key] = grain  # before any wait: a second activate finds it and does not start another
        async with self._opening:
            if self._grains.get(key) is not grain:
                return "stopped"  # deactivated while it waited its turn
            return await grain.start()

    async def grain_call(self, ws: str, sid: str, op: str, *args: Any) -> Any:
        """restart, logout, stop, status or reopen on a grain; None when this host has no such grain."""
        grain = self._grains.get((ws, sid))
        if grain is None and op == "reopen":
            return await self.activate(ws, sid)  # lost with an earlier incarnation: reopen is activation
        if grain is None or op not in ("restart", "logout", "stop", "status", "reopen"):
            return None
        return await getattr(grain, op)(*args)

    async def deactivate(self, ws: str, sid: str) -> bool:
        grain = self._grains.pop((ws, sid), None)
        await self.close_session(ws, sid)
        return grain is not None

    async def grains(self) -> list[tuple[str, str]]:
        return list(self._grains)

    # ------------------------------------------------------------ restarts
    async def _tell_sessions_to_reopen(self) -> None:
        node = ray.get_runtime_context().get_node_id()
        registry = self._registry
        for ws, sid in await registry.all():
            record = await registry.get(ws, sid) or {}
            if record.get("node_id") != node:
                continue
            if self._config.session_hosting == "host":
                # the grains died with the old incarnation: bring back every session that was not over,
                # a few pages at a time so the relaunched Chromium is not stampeded
                if record.get("state") not in ("stopped", "failed"):
                    background(self.activate(ws, sid), f"activation of {ws}/{sid}")
                continue
            try:
                actor = ray.get_actor(session_actor_name(ws, sid), namespace=NAMESPACE)
            except ValueError:
                continue  # its actor is gone too; the supervisor revives it, and it opens a page then
            actor.reopen.remote("browser host restarted")

    async def ping(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "browser": bool(self._browser and self._browser.is_connected()),
            "sessions": len(self._sessions),
            "grains": len(self._grains),
            "spares": len(self._spares),
            "spares_used": self._spares_used,
            "preopened_taken": self._preopened_taken,
            "incarnation": self._incarnation,
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    async def shutdown(self) -> None:
        """The service stops: pages close, and grains go without a transition, so the registry keeps
        each session's last state for the restore at the next start."""
        self._closing = True
        self._grains.clear()
        for spare in self._spares:
            await spare.close()
        self._spares.clear()
        for ws, sid in list(self._sessions):
            await self.close_session(ws, sid)
        await self._watch.close()
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
        self._browser = self._playwright = None

    async def sync(self, ws: str, sid: str, reason: str = "api") -> str | dict[str, str] | None:
        """Start a history sync of a session here (actors/session_sync.py): its sync_id, or None when one
        runs already or, for `link` (the first connect of a newly linked number), when the workspace's
        policy says not to sync on link; `{"error": "no_page"}` when this host has no page for it."""
        from wa_ray.actors.session_sync import SessionSync
        from wa_ray.sessions.conversations import PageConversations

        hosted = self._sessions.get((ws, sid))
        if hosted is None:
            return {"error": "no_page"}
        syncs = self._syncs
        if syncs is None:
            syncs = self._syncs = SessionSync(self._redis, self._config.media_retention_s)
        return await syncs.start(ws, sid, PageConversations(hosted.page), "link" if reason == "link" else "api")

    async def download_pending(self, pending: PendingMedia) -> str:
        """A lazily received media of a session here, from its page into the media store under its allotted
        id (the ingress asks on the first GET, serve_app/lazy_media.py): `stored`, `too_large`, or
        `unavailable` (no page here for that session, or the page no longer has the media)."""
        from wa_ray.sessions.page_media import PageMedia

        hosted = self._sessions.get((pending.workspace_id, pending.locator.get("session_id", "")))
        if hosted is None or pending.source != "webjs":
            return "unavailable"
        return await self._inbound.pending_media(pending, PageMedia(hosted.page))

    async def conversation(self, ws: str, sid: str, op: str, params: dict[str, Any]) -> dict[str, Any]:
        """A conversation call on a session's page here (chats, messages, contacts, read, presence, ...;
        actors/conversations.py), answered as data; `{"error": "no_page"}` when this host has no page for it."""
        from wa_ray.actors.conversations import ConversationCalls

        hosted = self._sessions.get((ws, sid))
        if hosted is None:
            return {"error": "no_page"}
        calls = self._conversation_calls
        if calls is None:
            calls = self._conversation_calls = ConversationCalls(self._redis, self._config)
        return await calls.call(ws, sid, hosted.page, op, params)

    async def _route(self, hosted: HostedSession, kind: PageSignal, payload: dict[str, Any]) -> None:
        ws, sid = hosted.ws, hosted.sid
        if kind is PageSignal.MESSAGE:
            from wa_ray.sessions.page_media import PageMedia

            await self._inbound.message(ws, sid, payload, PageMedia(hosted.page))
        elif kind in MESSAGE_CHANGE_SIGNALS:
            await self._inbound.message_change(ws, sid, kind, payload)
        elif kind is PageSignal.ACK:
            await self._inbound.ack(ws, sid, payload["id"], int(payload["ack"]))
        elif kind in LIFECYCLE_SIGNALS:
            self._track_sendable(hosted, kind, payload)
            hosted.signal(kind, payload)

    @staticmethod
    def _track_sendable(hosted: HostedSession, kind: PageSignal, payload: dict[str, Any]) -> None:
        """The sender loop runs only while the page is linked and online."""
        state = payload.get("state") if kind is PageSignal.STATE else None
        linked_again = state == "CONNECTED" and payload.get("hasSynced")
        if kind is PageSignal.READY or linked_again:
            hosted.sender.connected.set()
        elif kind is PageSignal.LOGOUT:  # unlinked from the phone: what it was sending is judged at once
            hosted.sender.unlinked()
        elif kind in UNSENDABLE_SIGNALS or (kind is PageSignal.STATE and state != "CONNECTED"):
            hosted.sender.connected.clear()

    def _on_browser_gone(self) -> None:
        self._browser = None
        self._spares.clear()  # their contexts went with the browser
        for hosted in self._sessions.values():
            hosted.sender.connected.clear()
            hosted.signal(PageSignal.CRASH, {"reason": "browser disconnected"})
