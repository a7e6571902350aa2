"""Redis -> page: one sender loop per session, pulling its priority queues.

Runs inside the node's BrowserHost next to the page, so a message costs Redis
round trips and one `page.evaluate`, never a Ray call.

Exactly once towards WhatsApp. `sent` means WhatsApp's server took the
message (ack 1), not that the page was handed it: the page send waits for that
answer (whatsapp-web.js's `waitUntilMsgSent`), one message at a time per
session, so at most one message per session is ever between intent and answer.
Each sender incarnation has its own consumer name in the group `senders`; a
new one first XAUTOCLAIMs what earlier ones read and never acknowledged.
Before a page send the sender records its intent in one atomic step (status
`sending`, the WhatsApp message key it mints, the page document that will send
it, itself as owner). A reclaimed `sending` message is resolved like this:

* its owner is still alive (heartbeat key): leave it, that sender is on it;
* the live page holds the key: acked by the server -> `sent`; refused (ack -1)
  -> failed over; still waiting for the server -> wait (the page delivers it
  when its socket is back, or dies, which the next rule covers);
* the page document is the one the intent names and does not hold the key:
  the send never reached `addAndSendMsgToChat`, so send it now with the same
  key (the bridge itself refuses a key it has already sent);
* the document is a different one (the browser or page died, or navigated,
  between intent and the server's answer): whether WhatsApp got it is
  unknowable from here, and the design says at most once, so it is failed as
  `unconfirmed`, never sent again.

The waits above are bounded. A `sending` message heads its session's queue
(the sender keeps one message at a time between intent and answer), so a wait
that never ends would hold everything queued behind it. A live owner answers
within SEND_TIMEOUT_S and a dead one's heartbeat lapses within
HEARTBEAT_TTL_S; a page that still shows ack 0 after its socket had that long
to come back will not tell us more. So once this sender has found a message
unresolved for UNRESOLVED_LIMIT_S of connected time, it stops trusting the
owner's heartbeat and judges by the page alone: a key the page holds with an
answer settles it as above; anything else (ack 0 still, the page not there,
another document) is failed as `unconfirmed`. That outcome only ever stops a
send: no rule here sends a message whose key a page may already hold, so the
bound can cost a false `failed`, never a second copy.

A sender's page belongs to it alone (a new page means a new SessionSender
with a new consumer name). When that page is closed for good, or the host
says stop, the sender stops, heartbeat included, even if the task
cancellation meant to end it got lost: it can never pose as a live owner of
the intent it left, nor keep its pending entries from being claimed
(re-reading one's own pending list resets their idle time in Redis).

Pacing (storage/pacing.py) happens before the intent, so a crash while waiting
leaves the message simply queued.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import redis.asyncio as aioredis
from playwright.async_api import Error as PlaywrightError

from wa_ray.actors.routing import FailoverRouter
from wa_ray.sessions.master_keys import master_and_previous
from wa_ray.sessions.page import PageSession
from wa_ray.storage import keys
from wa_ray.storage.events import EventLog
from wa_ray.storage.messages import WEBJS, MessageStore
from wa_ray.storage.pacing import PacingPolicy, PacingStore, decide
from wa_ray.storage.providers import ProviderStore
from wa_ray.config import RuntimeConfig
from wa_ray.events import MESSAGE_SENT, SESSION_PAUSED, SESSION_RESUMED, Event

log = logging.getLogger(__name__)

BATCH_UNPACED = 50
BLOCK_MS = 1000
SEND_TIMEOUT_S = 20.0  # the server's answer; a socket that is down holds it back (the page sends on reconnect)
HEARTBEAT_S, HEARTBEAT_TTL_S = 3.0, 10
RECLAIM_EVERY_S, RECLAIM_IDLE_MS = 5.0, 5_000
RETRY_LATER_S = 0.5
PAGE_CHECK_S = 1.0  # while offline, how often the sender checks that its page is still there
# How long (connected time) a `sending` message may stay unresolved before the page alone decides it; see above.
UNRESOLVED_LIMIT_S = SEND_TIMEOUT_S + HEARTBEAT_TTL_S
PAUSE_RECHECK_S = 5.0
UNCONFIRMED = ("unconfirmed: the page sending it went away mid-send; whether WhatsApp got it cannot be known, "
               "and it is not sent again so WhatsApp never gets it twice")

# One evaluate per send for the key and the document id: a navigation or a crash gives a new document.
_KEY_AND_DOC = """async () => {
  const doc = window.__warayDoc || (window.__warayDoc = Math.random().toString(36).slice(2) + Date.now().toString(36));
  return [await window.__waray.newKey(), doc];
}"""
# The page's own record of a key: null (never took it) or its ack (0 waiting for the server, 1+ taken, -1 refused).
_ACK_AND_DOC = """(id) => {
  const store = typeof window.require === 'function' && window.require('WAWebCollections');
  const m = store && store.Msg.get(id);
  return [m ? (m.ack || 0) : null, window.__warayDoc || null];
}"""
_SEND = "(m) => window.__waray.send(m)"

DONE, LATER = "done", "later"


class PageGone(Exception):
    """The page (or its document) is not there to answer: the outcome of a send in flight is open."""


class SessionSender:
    def __init__(self, redis: aioredis.Redis, ws: str, sid: str, page: PageSession, config: RuntimeConfig) -> None:
        self._redis = redis
        self._ws, self._sid = ws, sid
        self._page = page
        self._messages = MessageStore(redis)
        self._events = EventLog(redis)
        self._pacing = PacingStore(redis, PacingPolicy.from_config(config))
        self._router = FailoverRouter(redis, ProviderStore(redis, *master_and_previous(config)),
                                      self._messages)
        self.epoch = secrets.token_hex(6)
        self._consumer = f"{sid}@{self.epoch}"
        self._streams = [keys.queue(ws, sid, p) for p in keys.PRIORITIES]
        self._paused = False
        self.connected = asyncio.Event()
        self._unresolved: dict[str, float] = {}  # message id -> when this sender first could not resolve it
        self._stopped = False
        self._page_seen = False

    def stop(self) -> None:
        """The host is closing this sender's page: no new send, and the loop ends within PAGE_CHECK_S
        whether or not the task's cancellation reaches it."""
        self._stopped = True
        self.connected.clear()

    # ------------------------------------------------------------------ loop
    async def run(self) -> None:
        beat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            while True:
                try:
                    await self._loop()
                    if self._stopped:  # the host closed the page and cancelled the task, which never got here
                        log.warning("sender %s/%s (%s) outlived its cancellation; stops now", self._ws, self._sid,
                                    self.epoch)
                    else:
                        log.info("sender %s/%s (%s) stops: its page is closed", self._ws, self._sid, self.epoch)
                    return
                except Exception:
                    log.exception("sender %s/%s failed; restarting its loop", self._ws, self._sid)
                    await asyncio.sleep(1)
                    if self._page_gone():
                        return
        finally:
            beat.cancel()
            try:
                await self._redis.delete(keys.sender_alive(self.epoch))
            except BaseException:  # cancelled again or Redis gone: the heartbeat's TTL ends it anyway
                log.debug("sender %s left its heartbeat to expire", self.epoch)

    async def _loop(self) -> None:
        await self._messages.ensure_group(self._streams)
        await self._reclaim(0)  # whatever an earlier incarnation read and never finished
        next_reclaim = time.monotonic() + RECLAIM_EVERY_S
        while True:
            await self._wait_connected()
            if self.connected.is_set() and self._page.page is not None:
                self._page_seen = True
            if self._page_gone():
                return  # for good: a new page comes with a new sender
            policy = await self._pacing.policy(self._ws)
            count = 1 if policy.enabled else BATCH_UNPACED
            batch = await self._own_pending(count) or await self._next(count)
            for stream, entry_id, message_id in batch:
                if not self.connected.is_set() or self._stopped:
                    break  # left in our pending list: picked up again once connected
                if await self._deliver(stream, entry_id, message_id) == LATER:
                    await asyncio.sleep(RETRY_LATER_S)
                    break
            if time.monotonic() > next_reclaim:
                await self._reclaim(RECLAIM_IDLE_MS)
                next_reclaim = time.monotonic() + RECLAIM_EVERY_S

    async def _wait_connected(self) -> None:
        """Wait for the page to be linked and online, or gone for good; time spent offline does not count
        against the bound."""
        if self.connected.is_set():
            return
        since = time.monotonic()
        while not self.connected.is_set() and not self._page_gone():
            try:
                async with asyncio.timeout(PAGE_CHECK_S):
                    await self.connected.wait()
            except TimeoutError:
                pass
        offline = time.monotonic() - since
        for message_id in self._unresolved:
            self._unresolved[message_id] += offline

    def _page_gone(self) -> bool:
        """Stopped by the host, or the page this sender was made for got linked once and is closed now."""
        if self._stopped:
            return True
        if not self._page_seen:
            return False  # still opening (a page may be replaced inside PageSession.open before it links)
        page = self._page.page
        return page is None or page.is_closed()  # None after PageSession.close()

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self._redis.set(keys.sender_alive(self.epoch), self._consumer, ex=HEARTBEAT_TTL_S)
            except Exception:  # Redis restarting: the sender goes on, so must its heartbeat
                log.debug("sender %s heartbeat missed", self.epoch)
            await asyncio.sleep(HEARTBEAT_S)

    async def _reclaim(self, min_idle_ms: int) -> None:
        """Take over what other consumers of this session read and never acknowledged (they land in our
        pending list, which the loop reads first)."""
        for stream in self._streams:
            await self._messages.claim_orphans(stream, self._consumer, min_idle_ms)

    async def _own_pending(self, count: int) -> list[tuple[str, str, str]]:
        """Entries this consumer holds but has not acknowledged, highest priority first."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in self._streams:
                pipe.xreadgroup(keys.QUEUE_GROUP, self._consumer, {stream: "0"}, count=count)
            replies = await pipe.execute()
        for reply in replies:
            entries = await self._usable(reply)
            if entries:
                return entries
        return []

    async def _next(self, count: int) -> list[tuple[str, str, str]]:
        """New entries, one priority at a time so an urgent message never waits behind a bulk batch."""
        for stream in self._streams:
            reply = await self._redis.xreadgroup(keys.QUEUE_GROUP, self._consumer, {stream: ">"}, count=count)
            entries = await self._usable(reply)
            if entries:
                return entries
        reply = await self._redis.xreadgroup(keys.QUEUE_GROUP, self._consumer, {s: ">" for s in self._streams},
                                             count=1, block=BLOCK_MS)
        entries = await self._usable(reply)
        entries.sort(key=lambda e: self._streams.index(e[0]))
        return entries

    async def _usable(self, reply: Any) -> list[tuple[str, str, str]]:
        out = []
        for stream, items in reply or []:
            for entry_id, fields in items:
                if fields and "m" in fields:
                    out.append((stream, entry_id, fields["m"]))
                else:  # trimmed or deleted under us: nothing to send
                    await self._messages.done(stream, entry_id)
        return out

    # ------------------------------------------------------------- one send
    async def _deliver(self, stream: str, entry_id: str, message_id: str) -> str:
        outcome = await self._resolve(stream, entry_id, message_id)
        if outcome == DONE:
            self._unresolved.pop(message_id, None)
            await self._messages.done(stream, entry_id)
        return outcome

    def _later(self, message_id: str) -> str:
        """A `sending` message left unresolved for now; remembers since when (the bound counts from there)."""
        self._unresolved.setdefault(message_id, time.monotonic())
        return LATER

    def _overdue(self, message_id: str) -> bool:
        first = self._unresolved.get(message_id)
        return first is not None and time.monotonic() - first >= UNRESOLVED_LIMIT_S

    async def _unconfirmed(self, record: dict[str, str], why: str) -> str:
        log.warning("sender %s/%s: message %s failed unconfirmed (%s)", self._ws, self._sid,
                    record["message_id"], why)
        await self._router.fail_or_failover(record, UNCONFIRMED, failover=False, allowed=("sending",))
        return DONE

    async def _resolve(self, stream: str, entry_id: str, message_id: str) -> str:
        record = await self._messages.record(message_id)
        if (not record or record.get("provider") != WEBJS or record.get("session_id") != self._sid
                or record.get("status") not in ("queued", "sending")):
            if record and record.get("status") in ("delivered", "read") and record.get("provider") == WEBJS:
                wa_id = f"true_{record['to']}@c.us_{record.get('wa_key', '')}"
                await self._sent_event_if_overtaken(message_id, {
                    "message_id": message_id, "wa_message_id": wa_id, "to": record["to"], "provider": WEBJS,
                    "send_ms": 0.0, "failover": record.get("failover") == "1"})
            return DONE  # sent, failed, or handed to the other provider: never send twice
        to = f"{record['to']}@c.us"
        key, doc = record.get("wa_key") or "", record.get("doc") or ""
        if record["status"] == "sending":
            overdue = self._overdue(message_id)  # past the bound the page alone decides (module docstring)
            owner = record.get("owner") or ""
            if (owner != self.epoch and owner and not overdue
                    and await self._redis.exists(keys.sender_alive(owner))):
                return self._later(message_id)  # its sender is alive and on it
            try:
                ack, current_doc = await self._page_state(f"true_{to}_{key}")
            except PageGone:
                if overdue:
                    return await self._unconfirmed(record, "no page to ask")
                return self._later(message_id)
            if ack is not None:
                outcome = await self._settle(record, f"true_{to}_{key}", ack)
                if outcome == LATER and overdue:
                    return await self._unconfirmed(record, "the page still waits for the server's answer")
                return self._later(message_id) if outcome == LATER else outcome
            if not key or doc != current_doc:
                return await self._unconfirmed(record, "sent from a page document that is gone")
            # same document, key unknown to it: the send never started; resend under the same key
        else:
            if not await self._pace(len(record["text"])):
                return LATER
            try:
                key, doc = await self._evaluate(_KEY_AND_DOC)
            except PageGone:
                return LATER
            intent = {"wa_key": key, "doc": doc, "owner": self.epoch, "intent_at": repr(time.time())}
            if not await self._messages.transition(message_id, self._ws, "sending", expect=("queued",),
                                                   provider=WEBJS, fields=intent, note={"provider": WEBJS}):
                return DONE  # rerouted or failed meanwhile
            record = {**record, "status": "sending", **intent}
        serialized = f"true_{to}_{key}"
        # bound before the send: an ack can overtake the send's own reply
        await self._messages.bind_wa_id(self._ws, message_id, serialized)
        started = time.monotonic()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that lands as the send
            # fails (the host closing the page does both), which left this sender running, orphaned
            async with asyncio.timeout(SEND_TIMEOUT_S):
                result = await self._evaluate(
                    _SEND, {"to": to, "body": record["text"], "keyId": key, "waitUntilMsgSent": True})
        except (PageGone, TimeoutError):
            return self._later(message_id)  # resolved against the page on the next pass
        except Exception as exc:
            return await self._after_page_error(record, serialized, exc)
        if result.get("result") == "ERROR":
            await self._refused(record)
            return DONE
        await self._mark_sent(record, result["id"], send_ms=(time.monotonic() - started) * 1000)
        if (await self._pacing.policy(self._ws)).enabled:
            await self._pacing.record(self._ws, self._sid, message_id)
        return DONE

    async def _settle(self, record: dict[str, str], serialized: str, ack: int) -> str:
        """The live page holds the key: its ack says what became of the message."""
        if ack >= 1:
            await self._mark_sent(record, serialized)
            return DONE
        if ack < 0:
            await self._refused(record)
            return DONE
        return LATER  # on this page, waiting for the server

    async def _refused(self, record: dict[str, str]) -> None:
        record = {**record, "status": "sending"}
        await self._router.fail_or_failover(record, "webjs: WhatsApp refused the message (ack -1)",
                                            allowed=("sending",))

    async def _after_page_error(self, record: dict[str, str], serialized: str, exc: Exception) -> str:
        """The page is alive and threw: it either holds the message or never took it (then fail over)."""
        try:
            ack, _ = await self._page_state(serialized)
        except PageGone:
            return self._later(record["message_id"])
        if ack is not None:
            outcome = await self._settle(record, serialized, ack)
            return self._later(record["message_id"]) if outcome == LATER else outcome
        log.warning("send %s failed on the page: %s", record["message_id"], exc)
        record = {**record, "status": "sending"}
        await self._router.fail_or_failover(record, f"webjs: {str(exc)[:400]}", allowed=("sending",))
        return DONE

    async def _mark_sent(self, record: dict[str, str], wa_id: str, send_ms: float = 0.0) -> None:
        message_id = record["message_id"]
        if wa_id != f"true_{record['to']}@c.us_{record.get('wa_key', '')}":  # else bound before the send
            await self._messages.bind_wa_id(self._ws, message_id, wa_id)
        data = {"message_id": message_id, "wa_message_id": wa_id, "to": record["to"], "provider": WEBJS,
                "send_ms": round(send_ms, 2), "failover": record.get("failover") == "1"}
        moved = await self._messages.transition(message_id, self._ws, "sent", provider=WEBJS,
                                                fields={"wa_message_id": wa_id}, note={"provider": WEBJS},
                                                event=Event(MESSAGE_SENT, self._ws, self._sid, data))
        if not moved:
            await self._sent_event_if_overtaken(message_id, data)

    async def _sent_event_if_overtaken(self, message_id: str, data: dict[str, Any]) -> None:
        """Delivered or read already, never recorded sent: the phone's acks got there first (the ack path
        waits only so long for us, and a Redis restart or a reclaim can hold `sent` back longer). The
        status stays where the acks put it, but `message.sent` is every sent message's outcome event and
        only this sender publishes it."""
        record = await self._messages.get(message_id)
        if record and record["status"] in ("delivered", "read") and not record.get("late_sent_event") \
                and not any(h.get("status") == "sent" for h in record["history"]):
            await self._events.publish(Event(MESSAGE_SENT, self._ws, self._sid, data))
            await self._redis.hset(keys.message(message_id), "late_sent_event", "1")  # once, on a later pass too

    # --------------------------------------------------------------- pacing
    async def _pace(self, length: int) -> bool:
        """Wait as the policy says; False when the session dropped meanwhile (the message stays queued)."""
        while True:
            policy = await self._pacing.policy(self._ws)
            if not policy.enabled:
                await self._set_paused(False, None)
                return self.connected.is_set()
            decision = decide(policy, await self._pacing.window(self._ws, self._sid))
            if decision.paused_until is None:
                break
            await self._set_paused(True, decision.paused_until)
            await asyncio.sleep(max(0.05, min(PAUSE_RECHECK_S, decision.paused_until - time.time())))
            if not self.connected.is_set():
                return False
        await self._set_paused(False, None)
        wait = decision.wait_s + policy.typing_s(length)
        if wait > 0:
            await asyncio.sleep(wait)
        return self.connected.is_set()

    async def _set_paused(self, paused: bool, until: float | None) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        key = keys.session_paused(self._ws, self._sid)
        if paused and until is not None:
            await self._redis.set(key, repr(until), ex=max(1, int(until - time.time()) + 1))
            data = {"reason": "hourly_cap", "resume_at": until}
            await self._events.publish(Event(SESSION_PAUSED, self._ws, self._sid, data))
        else:
            await self._redis.delete(key)
            await self._events.publish(Event(SESSION_RESUMED, self._ws, self._sid, {"reason": "hourly_cap"}))

    # ----------------------------------------------------------------- page
    async def _evaluate(self, script: str, arg: Any = None) -> Any:
        page = self._page.page
        if page is None:
            raise PageGone("page is not open")
        try:
            return await page.evaluate(script, arg)
        except Exception as exc:
            if _page_gone(exc):
                raise PageGone(str(exc)) from exc
            raise

    async def _page_state(self, serialized: str) -> tuple[int | None, str | None]:
        ack, doc = await self._evaluate(_ACK_AND_DOC, serialized)
        return ack, doc


def _page_gone(exc: BaseException) -> bool:
    """Closed page/context/browser, a navigation under the call, or no page: the document is gone."""
    if isinstance(exc, PageGone):
        return True
    if isinstance(exc, RuntimeError) and "page is not open" in str(exc):
        return True
    if isinstance(exc, PlaywrightError):
        text = str(exc)
        return any(s in text for s in ("has been closed", "Target closed", "Execution context was destroyed",
                                       "navigation", "Target crashed", "crashed"))
    return False
