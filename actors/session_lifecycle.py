"""SessionLifecycle: the one owner of a session's lifecycle state, with no Ray in it.

It turns the page's signals into the design's state machine, publishes every
transition, saves the auth state once linked, and reopens the page from that
state after a crash. A WhatsApp-side disconnect (CONFLICT, UNLAUNCHED, a long
TIMEOUT) is retried with backoff within WA_DISCONNECT_RETRY_S, then the session
is `failed` (actors/disconnect_retry.py). Where it runs is the hosting mode's business:

* `actor` hosting: inside the session's own `SessionActor` process, talking to
  the node's BrowserHost over Ray (actors/session_actor.py);
* `host` hosting: as a grain inside the node's BrowserHost, next to its page,
  talking to it by plain method calls (actors/browser_host.py).

It reaches its page and its records (the event stream, the registry, the saved
auth state) through a `HostPort` to the node's BrowserHost, which holds the
Redis connection and the master key: the state machine is the same code in both
modes, and a SessionActor process imports no Redis client and no cryptography
(about 21 MB of private memory per session, bench/results/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from wa_ray.actors.disconnect_retry import SOCKET_CAUSES, DisconnectCause, attempt_offsets, gave_up_reason
from wa_ray.sessions.state import SOCKET_STATES, PageSignal, SessionState
from wa_ray.events import (
    SESSION_DISCONNECTED,
    SESSION_PAIRING_CODE,
    SESSION_QR,
    SESSION_READY,
    SESSION_STATUS,
)
from wa_ray.runtime import RuntimeConfig

log = logging.getLogger(__name__)

QR_FIRST_TTL_S = 60
QR_NEXT_TTL_S = 20
PAIRING_CODE_TTL_S = 180  # WhatsApp's pairing codes live 3 minutes
DOWN_STATES = frozenset({SessionState.DISCONNECTED, SessionState.LOGGED_OUT, SessionState.BLOCKED,
                         SessionState.FAILED, SessionState.RECONNECTING})
RECONNECT_DELAYS_S = (0.5, 1, 2, 5, 10, 30)
# The states a WhatsApp-side disconnect leaves a session in while it is retried (actors/disconnect_retry.py).
RETRYING_STATES = frozenset({SessionState.DISCONNECTED, SessionState.RECONNECTING})
ATTEMPT_TIMEOUT_S = 30.0  # one takeover or reopen; the lifecycle's lock is held meanwhile


class HostPort(Protocol):
    """The session's page and records in the node's BrowserHost, already bound to (workspace, session)."""

    async def attach(self) -> dict[str, Any] | None: ...

    async def open(self, restore: bool) -> None:
        """A new page; `restore`: from the saved auth state, if there is one."""

    async def close(self, unlinked: bool = False) -> None:
        """Close the page. `unlinked`: the link ends here (logout, delete): what the session's sender holds
        `sending` is judged by the page first (actors/outbound.py), as after a phone-side logout."""

    async def save_auth(self) -> None:
        """The page's auth state into the auth store."""

    async def delete_auth(self) -> None: ...

    async def publish(self, type_: str, data: dict[str, Any]) -> None: ...

    async def set_state(self, state: str, reason: str, fields: dict[str, Any]) -> None:
        """The registry's record of the session: its state, why, and `fields`."""

    async def update(self, fields: dict[str, Any]) -> None: ...

    async def sync(self, reason: str) -> str | None:
        """Start a history sync of the page (actors/session_sync.py); `link`: only if the policy says so."""

    async def login(self) -> dict[str, Any]:
        """How the session links: `{"login": "qr"|"code", "phone": digits|None}` (its registry record)."""

    async def pairing_code(self, phone: str) -> str:
        """A pairing code for `phone` from the page (as whatsapp-web.js requestPairingCode asks for one)."""

    async def takeover(self) -> bool:
        """Ask the page to take its account back (CONFLICT, UNLAUNCHED); False when there is no page to ask."""


class SessionLifecycle:
    def __init__(self, config: RuntimeConfig, ws: str, sid: str, port: HostPort) -> None:
        self._config = config
        self._ws, self._sid = ws, sid
        self._port = port
        self._state = SessionState.STOPPED
        self._qr_count = 0
        self._me: dict[str, Any] | None = None
        self._reconnects = 0
        self._lock = asyncio.Lock()
        self._reconnecting: asyncio.Task[None] | None = None
        self._started = False
        self._linking = False  # a code (QR or pairing) was offered since the page opened: READY is a new link
        self._login: dict[str, Any] | None = None  # read once from the registry (login "qr" or "code", phone)
        self._pairing: asyncio.Task[None] | None = None  # asks for pairing codes while the page is unlinked
        self._code_count = 0
        self._socket = ""  # the page's last socket state (WhatsApp Web's Socket.state)
        self._cause: DisconnectCause | None = None  # the latest WhatsApp-side disconnect of a retry episode
        self._retry: asyncio.Task[None] | None = None  # the episode's attempts, then its give-up

    @property
    def state(self) -> SessionState:
        return self._state

    async def start(self) -> str:
        """Take over a live page if the host still has one, else open a page from saved auth state.

        Once only: a second start (a supervisor that lost track of the first one's reply) would open a
        second page over the first."""
        if self._started:
            return self._state.value
        self._started = True
        live = await self._port.attach()
        if live and live.get("preopened"):
            async with self._lock:  # the page's later signals queue behind the ones it said before we came
                await self._transition(SessionState.INITIALIZING, "starting")
                for kind, payload in live.get("signals", []):
                    await self._handle(PageSignal(kind), payload)
            return self._state.value
        if live and live.get("hasSynced"):
            self._me = live.get("me")
            if str(live.get("state")) in SOCKET_CAUSES:  # left disconnected by its predecessor: retried from here
                async with self._lock:
                    await self._on_socket_state(str(live["state"]), True)
                return self._state.value
            await self._transition(SessionState.CONNECTED, "resumed live page")
            return self._state.value
        await self._transition(SessionState.INITIALIZING, "starting")
        try:
            await self._open_page()
        except Exception as exc:  # the page could not load: retry with backoff instead of failing the caller
            await self._handle(PageSignal.CRASH, {"reason": f"page did not open: {exc}"[:300]})
        return self._state.value

    async def _open_page(self) -> None:
        self._qr_count = 0
        self._stop_pairing()
        await self._port.open(restore=True)

    async def on_page_signal(self, kind: PageSignal | str, payload: dict[str, Any]) -> None:
        async with self._lock:
            await self._handle(PageSignal(kind), payload)

    async def _handle(self, kind: PageSignal, payload: dict[str, Any]) -> None:
        if kind is PageSignal.QR:
            await self._on_qr(payload["qr"])
        elif kind is PageSignal.READY:
            self._stop_pairing()
            self._stop_retry()
            self._me = payload.get("me")
            self._reconnects = 0
            await self._transition(SessionState.CONNECTED, "page synced", me=(self._me or {}).get("number"),
                                   push_name=payload.get("pushname"))  # the numbers' listing shows it
            await self._publish(SESSION_READY, {"me": self._me, "pushname": payload.get("pushname")})
            await self._save_auth()
            if self._linking:  # newly linked, not restored: its history syncs once (policy on_link)
                self._linking = False
                await self._sync_on_link()
        elif kind is PageSignal.STATE:
            await self._on_socket_state(payload.get("state", ""), bool(payload.get("hasSynced")))
        elif kind is PageSignal.LOGOUT:
            self._stop_retry()
            await self._port.delete_auth()
            self._qr_count = 0  # the page offers fresh codes to relink
            self._stop_pairing()
            await self._transition(SessionState.LOGGED_OUT, "unlinked from the phone")
        elif kind in (PageSignal.CRASH, PageSignal.PAGE_CLOSED):
            if self._state not in (SessionState.STOPPED, SessionState.FAILED):
                await self._transition(SessionState.RECONNECTING, payload.get("reason", kind))
                if self._reconnecting is None or self._reconnecting.done():  # one loop, never two racing opens
                    self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _on_socket_state(self, socket_state: str, synced: bool) -> None:
        self._socket = socket_state
        mapped = SOCKET_STATES.get(socket_state)
        if mapped is SessionState.CONNECTED and synced:
            self._stop_retry()
            if self._state is not SessionState.CONNECTED:
                self._reconnects = 0
                await self._transition(SessionState.CONNECTED, "connection restored",
                                       me=(self._me or {}).get("number"))
            return
        if mapped is None or mapped in (SessionState.CONNECTED, SessionState.QR_REQUIRED):
            return  # `ready` and `qr` carry those transitions with their data
        if mapped is SessionState.INITIALIZING and self._state is not SessionState.INITIALIZING:
            return
        await self._transition(mapped, f"socket {socket_state}")
        cause = SOCKET_CAUSES.get(socket_state)
        if cause is not None and self._state in RETRYING_STATES:
            self._cause = cause  # the give-up names the latest cause: why the session is still down
            if self._retry is None or self._retry.done():  # one episode, one bound: a repeat joins it
                self._retry = asyncio.get_running_loop().create_task(self._retry_disconnect(cause))

    async def _retry_disconnect(self, first: DisconnectCause) -> None:
        """A WhatsApp-side disconnect's retry episode: attempts on the backoff schedule (a lost socket only
        after its grace, the page may fix it itself), then, if the session is still down when
        `disconnect_retry_s` has passed since the disconnect, its page closes and it is `failed`.

        Ends quietly once the session leaves the retrying states (recovered, logged out, blocked,
        restarted, stopped); `_stop_retry` also cancels it then."""
        loop = asyncio.get_running_loop()
        budget = self._config.disconnect_retry_s
        began = loop.time()
        start = 0.0 if first.takes_over else self._config.disconnect_grace_s
        for offset in attempt_offsets(budget, start_s=start):
            await asyncio.sleep(max(0.0, began + offset - loop.time()))
            async with self._lock:
                if not self._retrying():
                    return
                await self._attempt()
        await asyncio.sleep(max(0.0, began + budget - loop.time()))
        async with self._lock:
            if not self._retrying():
                return
            self._retry = None
            cause = self._cause or first
            log.warning("%s/%s still down (%s) after %.0f s of retries: failed", self._ws, self._sid, cause, budget)
            await self._port.close()
            await self._transition(SessionState.FAILED, gave_up_reason(cause, budget))

    def _retrying(self) -> bool:
        return self._state in RETRYING_STATES and self._retry is asyncio.current_task()

    async def _attempt(self) -> None:
        """One recovery attempt, chosen by where the page's socket is now: a takeover after CONFLICT or
        UNLAUNCHED (falling back to a reopen when there is no page to ask), a reopen from saved state
        otherwise. Nothing while a crash's reconnect is opening a page, or a page is coming up CONNECTED."""
        if self._reconnecting is not None and not self._reconnecting.done():
            return
        if self._socket == "CONNECTED":
            return  # linked again; its `ready` follows
        cause = SOCKET_CAUSES.get(self._socket)
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                if cause is not None and cause.takes_over and await self._port.takeover():
                    return
                await self._open_page()
        except Exception as exc:  # noqa: BLE001 - the page or its host may be away: the next attempt may do
            log.warning("disconnect retry of %s/%s failed: %s", self._ws, self._sid, type(exc).__name__)

    def _stop_retry(self) -> None:
        task, self._retry = self._retry, None
        self._cause = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _login_mode(self) -> dict[str, Any]:
        if self._login is None:
            try:
                self._login = await self._port.login()
            except Exception as exc:  # noqa: BLE001 - the record cannot be read now: QR, and ask again next time
                log.warning("login mode of %s/%s unknown: %s", self._ws, self._sid, type(exc).__name__)
                return {"login": "qr", "phone": None}
        return self._login

    async def _on_qr(self, qr: str) -> None:
        login = await self._login_mode()
        if login.get("login") == "code" and login.get("phone"):
            await self._want_code(str(login["phone"]))
            return
        self._qr_count += 1
        if self._qr_count > self._config.qr_max_refs:
            await self._port.close()
            await self._transition(SessionState.FAILED, "qr_timeout: no scan before the codes ran out")
            return
        if self._state is not SessionState.QR_REQUIRED:
            await self._transition(SessionState.QR_REQUIRED, "link this device by scanning the QR")
        expires_in = QR_FIRST_TTL_S if self._qr_count == 1 else QR_NEXT_TTL_S
        await self._port.update({"qr": qr, "qr_at": time.time()})
        await self._publish(SESSION_QR, {"qr": qr, "seq": self._qr_count, "expires_in": expires_in})

    async def _want_code(self, phone: str) -> None:
        """The page wants a login and this session links with a pairing code: no QR is published; codes are
        asked for (and renewed) by one task while the page stays unlinked."""
        if self._state is not SessionState.QR_REQUIRED:
            await self._transition(SessionState.QR_REQUIRED, "link this device by entering the pairing code on the phone")
        if self._pairing is None or self._pairing.done():
            self._pairing = asyncio.get_running_loop().create_task(self._pair(phone))

    def _stop_pairing(self) -> None:
        if self._pairing is not None and self._pairing is not asyncio.current_task():
            self._pairing.cancel()
        self._pairing = None
        self._code_count = 0

    async def _pair(self, phone: str) -> None:
        """A code now, then a new one every `pairing_code_interval_s` while unlinked (what requestPairingCode's
        interval does), at most `pairing_code_max` asks; then the session fails as a QR timeout does. The
        code goes out in `session.pairing_code` only: never into the registry, a log line or an error."""
        asks = 0
        while self._state is SessionState.QR_REQUIRED:
            if asks >= self._config.pairing_code_max:
                async with self._lock:
                    if self._state is SessionState.QR_REQUIRED:
                        await self._port.close()
                        await self._transition(SessionState.FAILED,
                                               "pairing_timeout: no pairing code entered before the codes ran out")
                return
            asks += 1
            try:
                code = await self._port.pairing_code(phone)
            except Exception as exc:  # noqa: BLE001 - the page may be reloading: the next ask may do
                log.warning("pairing code of %s/%s not given: %s", self._ws, self._sid, type(exc).__name__)
            else:
                if self._state is not SessionState.QR_REQUIRED:
                    return
                self._code_count += 1
                await self._publish(SESSION_PAIRING_CODE, {"code": code, "expires_in": PAIRING_CODE_TTL_S,
                                                           "seq": self._code_count})
            await asyncio.sleep(self._config.pairing_code_interval_s)

    async def _reconnect(self) -> None:
        """Reopen the page from saved state with backoff until it opens; `ready` then says connected."""
        while self._state is SessionState.RECONNECTING:
            await asyncio.sleep(RECONNECT_DELAYS_S[min(self._reconnects, len(RECONNECT_DELAYS_S) - 1)])
            self._reconnects += 1
            if self._state is not SessionState.RECONNECTING:
                return
            try:
                await self._open_page()
                return
            except Exception as exc:  # the host may be restarting: try again after the next delay
                log.warning("reconnect of %s/%s failed: %s", self._ws, self._sid, exc)

    async def _save_auth(self) -> None:
        await self._port.save_auth()

    async def _sync_on_link(self) -> None:
        try:
            await self._port.sync("link")
        except Exception as exc:  # noqa: BLE001 - the link stands without its history; POST .../sync retries
            log.warning("sync on link of %s/%s not started: %s", self._ws, self._sid, type(exc).__name__)

    async def reopen(self, reason: str) -> None:
        """The page is gone without a signal (its BrowserHost was restarted): reconnect from saved state."""
        async with self._lock:
            await self._handle(PageSignal.CRASH, {"reason": reason})

    async def restart(self) -> str:
        self._stop_pairing()
        self._stop_retry()
        await self._port.close()
        await self._transition(SessionState.INITIALIZING, "restart requested")
        await self._open_page()
        return self._state.value

    async def logout(self) -> str:
        self._stop_pairing()
        self._stop_retry()
        await self._port.close(unlinked=True)
        await self._port.delete_auth()
        await self._transition(SessionState.LOGGED_OUT, "logout requested")
        return self._state.value

    async def stop(self, purge: bool) -> None:
        self._stop_pairing()
        self._stop_retry()
        await self._port.close(unlinked=purge)  # deleted: its link ends; only stopped: it is reopened later
        if purge:
            await self._port.delete_auth()
        await self._transition(SessionState.STOPPED, "deleted" if purge else "stopped")

    async def status(self) -> dict[str, Any]:
        return {"state": self._state.value, "me": self._me, "qr_count": self._qr_count,
                "pairing_code_count": self._code_count}

    async def _transition(self, new: SessionState, reason: str, **fields: Any) -> None:
        previous = self._state
        if new is previous:
            return
        self._state = new
        if new is SessionState.QR_REQUIRED:
            self._linking = True
        await self._port.set_state(new.value, reason, fields)
        await self._publish(SESSION_STATUS, {"state": new.value, "previous": previous.value, "reason": reason})
        if new in DOWN_STATES and previous is SessionState.CONNECTED:
            await self._publish(SESSION_DISCONNECTED, {"state": new.value, "reason": reason})

    async def _publish(self, type_: str, data: dict[str, Any]) -> None:
        await self._port.publish(type_, data)
