"""Redis -> page: one sender loop per session, pulling its priority queues.

Runs inside the node's BrowserHost next to the page, so a message costs Redis
round trips and one `page.evaluate`, never a Ray call. An idle sender makes no
blocking read of its own: the host's one StreamWatch (storage/stream_watch.py)
wakes it when its queues get an entry, and it looks anyway at each reclaim
sweep, so a lost wake costs at most RECLAIM_EVERY_S.

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

The end of the link ends that wait at once: a phone-side logout (the page's LOGOUT signal, `unlinked`), or
our API's logout or delete (the host calls `judge_unlinked` before it closes the page). The link the message
went out on is gone, so no answer can come, and the page cannot send under it again. Each `sending`
message this sender holds is judged by the page alone right then, as past the bound, except that nothing
is sent: a key the page holds with an answer settles it; anything else is failed `unconfirmed`. Queued
messages stay queued (a campaign's move to another number; the others go out after a new link).

A sender's page belongs to it alone (a new page means a new SessionSender
with a new consumer name). When that page is closed for good, or the host
says stop, the sender stops, heartbeat included, even if the task
cancellation meant to end it got lost: it can never pose as a live owner of
the intent it left, nor keep its pending entries from being claimed
(re-reading one's own pending list resets their idle time in Redis).

Pacing (storage/pacing.py) happens before the intent, so a crash while waiting
leaves the message simply queued. So do the ban-risk holds (actors/ban_risk_gate.py: a number paused by
its ban-risk score, a new contact at the daily new-contacts cap); after a successful send the gate stamps
the contact and scores the number. Neither touches the intent or how a `sending` message is resolved.

Every kind but template goes through the same path (sessions/page.py PageItem).
A reply's quoted message and a reaction's target are page message ids: our
own `msg_...` id is resolved to the WhatsApp id it was sent under (same
workspace only), anything else is taken as a WhatsApp id; a target the page
does not know fails the message with `target_not_found`. Media is fetched once
(actors/media_fetch.py), decrypted into a 0600 file for the duration of the
send and read by the browser from disk. A reaction leaves no message of ours
on the page, so a reaction whose send was cut off is sent again from the same
document; setting the same emoji twice is the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from wa_ray.actors.ban_risk_gate import BanRiskGate, Hold
from wa_ray.actors.routing import FailoverRouter
from wa_ray.master_keys import master_and_previous
from wa_ray.actors.media_fetch import MediaFailure, media_for_send
from wa_ray.egress_http import guard_for
from wa_ray.message_kinds import MEDIA_KINDS, FailureCode, Kind
from wa_ray.sessions.media_access import media_store_for
from wa_ray.sessions.page import PageGone, PageItem, PageMedia, PageSession, TargetNotFound, outgoing_id
from wa_ray.wa_ids import is_group_id
from wa_ray.sessions.vcard import page_cards
from wa_ray.storage.media import MediaStore
from wa_ray.storage import keys
from wa_ray.storage.events import EventLog
from wa_ray.storage.messages import WEBJS, MessageStore, content_of
from wa_ray.storage.ban_risk import OPERATOR_RESUMABLE
from wa_ray.storage.pacing import PacingPolicy, PacingStore, decide
from wa_ray.storage.providers import ProviderStore
from wa_ray.storage.stream_consumer import Entry, Outcome, StreamConsumer
from wa_ray.storage.stream_watch import StreamWatch
from wa_ray.config import RuntimeConfig
from wa_ray.events import MESSAGE_SENT, SESSION_PAUSED, SESSION_RESUMED, Event

log = logging.getLogger(__name__)
PRESENCE_WAIT_S = 2.0  # the longest a typing/paused chat state may hold up a paced send

BATCH_UNPACED = 50
SEND_TIMEOUT_S = 20.0  # the server's answer; a socket that is down holds it back (the page sends on reconnect)
HEARTBEAT_S, HEARTBEAT_TTL_S = 3.0, 10
RECLAIM_EVERY_S, RECLAIM_IDLE_MS = 5.0, 5_000
RETRY_LATER_S = 0.5
PAGE_CHECK_S = 1.0  # while offline, how often the sender checks that its page is still there
# How long (connected time) a `sending` message may stay unresolved before the page alone decides it; see above.
UNRESOLVED_LIMIT_S = SEND_TIMEOUT_S + HEARTBEAT_TTL_S
PAUSE_RECHECK_S = 5.0
PAUSE_MARK_TTL_S = 30 * 24 * 3600  # a pause without a resume time (ban risk) is marked until it is resumed
UNCONFIRMED = ("unconfirmed: the page sending it went away mid-send; whether WhatsApp got it cannot be known, "
               "and it is not sent again so WhatsApp never gets it twice")
SENDABLE = ("queued", "sending")
TARGET_UNKNOWN = "target_not_found: the message it refers to is unknown to this WhatsApp Web session"
# A plain media file outlives its send only when the process died mid-send; past this age it is deleted.
STALE_PLAIN_S = 600.0


class KindFailure(Exception):
    """A message that cannot be sent as it stands (its media, its target): failed with a stable code."""

    def __init__(self, code: FailureCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class SessionSender(StreamConsumer):
    """One session's queues, one message at a time: a consumer named `{sid}@{epoch}` per incarnation."""

    def __init__(self, redis: aioredis.Redis, ws: str, sid: str, page: PageSession, config: RuntimeConfig,
                 watch: StreamWatch | None = None) -> None:
        self.epoch = secrets.token_hex(6)
        super().__init__(redis, keys.QUEUE_GROUP, f"{sid}@{self.epoch}", delete_on_ack=True)
        self._ws, self._sid = ws, sid
        self._page = page
        self._messages = MessageStore(redis)
        self._events = EventLog(redis)
        self._pacing = PacingStore(redis, PacingPolicy.from_config(config))
        self._router = FailoverRouter(redis, ProviderStore(redis, *master_and_previous(config)),
                                      self._messages)
        self._streams = [keys.queue(ws, sid, p) for p in keys.PRIORITIES]
        # The host's watch wakes this sender when its queues get an entry; a sender made alone has its own.
        self._watch, self._own_watch = watch or StreamWatch(redis), watch is None
        self._wake = asyncio.Event()
        self._maybe_held = True  # our pending list may hold entries: read it before leasing new ones
        self._config = config
        self._media: MediaStore | None = None  # made at the first media send
        self._guard: Any = None
        self._paused: str | None = None  # why this sender holds its sends now (the paused marker's reason)
        self._risk = BanRiskGate(redis, ws, sid, self._events, self._paused_by_risk)
        self.connected = asyncio.Event()
        self._unresolved: dict[str, float] = {}  # message id -> when this sender first could not resolve it
        self._unlinked = False  # the page was logged out from the phone and has not been linked since
        self._stopped = False
        self._beating = True  # the heartbeat's loop runs while this holds (run() clears it as it ends)
        self._page_seen = False
        self._me: str | None = None  # our number, for the ids of group messages

    def stop(self) -> None:
        """The host is closing this sender's page: no new send, and the loop ends within PAGE_CHECK_S
        whether or not the task's cancellation reaches it."""
        self._stopped = True
        self.connected.clear()
        self._wake.set()

    def unlinked(self) -> None:
        """The phone logged the page out: no send until it is linked again, and the `sending` messages this
        sender holds are judged now (module docstring), not after a bound that no answer can beat."""
        self._unlinked = True
        self.connected.clear()
        self._wake.set()

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
            # The flag ends the heartbeat even if its cancellation is lost: on Python 3.11 asyncio.wait_for
            # (which redis-py wraps around each command) returns the result instead of raising when a cancel
            # lands just as the command completes, and a heartbeat that outlived its sender made that
            # sender's intents look owned forever (a chaos run showed two live senders of one session).
            self._beating = False
            beat.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(beat), HEARTBEAT_S + 1)
            except BaseException:  # cancelled (as asked), or cancelled again ourselves: the flag ends it
                pass
            try:
                await self._redis.delete(keys.sender_alive(self.epoch))
            except BaseException:  # cancelled again or Redis gone: the heartbeat's TTL ends it anyway
                log.debug("sender %s left its heartbeat to expire", self.epoch)

    async def _loop(self) -> None:
        await self.join(self._streams)
        await self._watch.watch(self._streams, self._wake)
        try:
            await self._reclaim(0)  # whatever an earlier incarnation read and never finished
            self._maybe_held = True
            next_reclaim = time.monotonic() + RECLAIM_EVERY_S
            while True:
                await self._wait_connected()
                if self.connected.is_set() and self._page.page is not None:
                    self._page_seen = True
                if self._page_gone():
                    return  # for good: a new page comes with a new sender
                policy = await self._pacing.policy(self._ws)
                count = 1 if policy.enabled else BATCH_UNPACED
                self._wake.clear()  # before reading: an entry added from here on sets it again
                batch = (await self._own_pending(count) if self._maybe_held else []) or \
                    await self._next(count, paced=policy.enabled)
                if not batch:
                    await self._idle(next_reclaim)
                for entry in batch:
                    if not self.connected.is_set() or self._stopped:
                        self._maybe_held = True  # left in our pending list: picked up again once connected
                        break
                    if await self._deliver(entry) is Outcome.LATER:
                        self._maybe_held = True
                        await asyncio.sleep(RETRY_LATER_S)
                        break
                if time.monotonic() > next_reclaim:
                    if await self.reclaim_any(self._streams, RECLAIM_IDLE_MS):
                        self._maybe_held = True
                    next_reclaim = time.monotonic() + RECLAIM_EVERY_S
        finally:
            self._watch.unwatch(self._streams, self._wake)
            if self._own_watch:
                await self._watch.close()

    async def _idle(self, until: float) -> None:
        """Nothing to send: wait for the watch to see a new entry, for the next reclaim, or for the page to go
        away or offline (checked every PAGE_CHECK_S, without Redis)."""
        while not self._wake.is_set() and self.connected.is_set() and not self._page_gone():
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(min(PAGE_CHECK_S, left)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _wait_connected(self) -> None:
        """Wait for the page to be linked and online, or gone for good; time spent offline does not count
        against the bound."""
        if self.connected.is_set():
            self._unlinked = False  # linked again since (a logout always clears `connected` first)
            return
        since = time.monotonic()
        while not self.connected.is_set() and not self._page_gone():
            if self._unlinked:
                await self.judge_unlinked()
                self._unlinked = False  # only once judged: a failed round (Redis away) is run again
                continue
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
        while self._beating:
            try:
                await self._redis.set(keys.sender_alive(self.epoch), self.name, ex=HEARTBEAT_TTL_S)
            except Exception:  # Redis restarting: the sender goes on, so must its heartbeat
                log.debug("sender %s heartbeat missed", self.epoch)
            if self._beating:
                await asyncio.sleep(HEARTBEAT_S)

    async def _reclaim(self, min_idle_ms: int) -> None:
        """Take over what other consumers of this session read and never acknowledged (they land in our
        pending list, which the loop reads first), and drop their names from the group."""
        for stream in self._streams:
            await self.reclaim(stream, min_idle_ms)

    async def _own_pending(self, count: int) -> list[Entry]:
        """Entries this consumer holds but has not acknowledged, highest priority first. Reading them
        also keeps them from going idle, so no other consumer reclaims them while this one lives."""
        lists = await self.held(self._streams, count)
        for entries in lists:
            usable = await self._usable(entries)
            if usable:
                return usable
        self._maybe_held = any(len(entries) >= count for entries in lists)
        return []

    async def _next(self, count: int, paced: bool) -> list[Entry]:
        """New entries, never a lower priority ahead of a higher one. Paced (one at a time), one priority
        at a time, so a message waiting for its pacing window holds no other lease; unpaced, one read
        over the four queues, sent in priority order."""
        if paced:
            for stream in self._streams:
                usable = await self._usable(await self.lease([stream], count))
                if usable:
                    return usable
            return []
        usable = await self._usable(await self.lease(self._streams, count))
        usable.sort(key=lambda e: self._streams.index(e.stream))
        return usable

    async def _usable(self, entries: list[Entry]) -> list[Entry]:
        out = []
        for entry in entries:
            if "m" in entry.fields:
                out.append(entry)
            else:  # trimmed or deleted under us: nothing to send
                await self.settle(entry, Outcome.DROPPED)
        return out

    # ------------------------------------------------------------- one send
    async def _deliver(self, entry: Entry) -> Outcome:
        return await self._conclude(entry, await self.handle(entry))

    async def _conclude(self, entry: Entry, outcome: Outcome) -> Outcome:
        """A final outcome acknowledges the entry and ends its message's unresolved clock; LATER keeps both."""
        if outcome.final:
            self._unresolved.pop(entry.fields["m"], None)
        return await self.settle(entry, outcome)

    async def handle(self, entry: Entry) -> Outcome:
        """Send the entry's message, or find out what became of the send an intent recorded."""
        message_id = entry.fields["m"]
        record = await self._messages.record(self._ws, message_id)
        if not self._ours_to_send(record):
            return await self._settled_elsewhere(message_id, record)
        if record["status"] == "sending":
            return await self._resume(record)
        return await self._first_send(record)

    def _ours_to_send(self, record: dict[str, str]) -> bool:
        return (bool(record) and record.get("provider") == WEBJS and record.get("session_id") == self._sid
                and record.get("status") in SENDABLE)

    async def _settled_elsewhere(self, message_id: str, record: dict[str, str]) -> Outcome:
        """Sent, failed, or handed to the other provider: never sent twice. A delivered or read one may
        still owe its `message.sent`."""
        if record and record.get("status") in ("delivered", "read") and record.get("provider") == WEBJS:
            await self._sent_event_if_overtaken(message_id, {
                "message_id": message_id, "wa_message_id": await self._wa_id(record, record.get("wa_key", "")),
                "to": record["to"], "provider": WEBJS, "send_ms": 0.0, "failover": record.get("failover") == "1"})
        return Outcome.DONE

    async def _first_send(self, record: dict[str, str]) -> Outcome:
        """A queued message: paced, then its intent recorded (key, document, owner), then sent."""
        if not await self._pace(len(record["text"]), record.get("to")):
            return Outcome.LATER
        try:
            minted = await self._page.mint_key()
        except PageGone:
            return Outcome.LATER
        intent = {"wa_key": minted.key, "doc": minted.document, "owner": self.epoch, "intent_at": repr(time.time())}
        if not await self._messages.transition(record["message_id"], self._ws, "sending", expect=("queued",),
                                               provider=WEBJS, fields=intent, note={"provider": WEBJS},
                                               session=self._sid):
            return Outcome.DONE  # rerouted, failed, or moved to another number (a campaign's) meanwhile
        return await self._send({**record, "status": "sending", **intent}, minted.key)

    async def _resume(self, record: dict[str, str], *, unlinked: bool = False) -> Outcome:
        """A `sending` message, its intent recorded earlier: judged by its owner, then by the page
        (module docstring). `unlinked`: the link ended (a logout, from the phone or our API, or a delete), so it
        is judged as past the bound at once, except that a live other owner keeps it and nothing is sent."""
        message_id = record["message_id"]
        key, doc = record.get("wa_key") or "", record.get("doc") or ""
        overdue = unlinked or self._overdue(message_id)  # past the bound the page alone decides
        if (unlinked or not overdue) and await self._held_by_live_other(record):
            return self._later(message_id)  # its sender is alive and on it
        serialized = await self._wa_id(record, key)
        try:
            held = await self._page.ack_of(serialized)
        except PageGone:
            if overdue:
                return await self._unconfirmed(record, "no page to ask")
            return self._later(message_id)
        if held.ack is not None:
            outcome = await self._settle_ack(record, serialized, held.ack)
            if outcome is Outcome.LATER and overdue:
                return await self._unconfirmed(record, "the page still waits for the server's answer")
            return self._later(message_id) if outcome is Outcome.LATER else outcome
        if unlinked:
            return await self._unconfirmed(record, "the link ended before the server's answer")
        if not key or doc != held.document:
            return await self._unconfirmed(record, "sent from a page document that is gone")
        return await self._send(record, key)  # same document, key unknown to it: the send never started

    async def _held_by_live_other(self, record: dict[str, str]) -> bool:
        """Its intent names another sender whose heartbeat is still alive: that sender is on it."""
        owner = record.get("owner") or ""
        return bool(owner) and owner != self.epoch and bool(await self._redis.exists(keys.sender_alive(owner)))

    async def judge_unlinked(self) -> None:
        """After the link ended: each `sending` message this sender holds is judged at once (`_resume`,
        unlinked); never sent. Queued ones, and ones settled elsewhere, wait for the loop as usual. Called by
        the loop after the page's LOGOUT, or by the host once this sender's loop has ended, before it closes
        the page of a session logged out or deleted through our API (no LOGOUT comes then: the page is
        closed, not logged out)."""
        for stream in self._streams:
            for entry in await self.held_all(stream):
                message_id = entry.fields.get("m")
                record = await self._messages.record(self._ws, message_id) if message_id else {}
                if not self._ours_to_send(record) or record["status"] != "sending":
                    continue
                await self._conclude(entry, await self._resume(record, unlinked=True))

    async def _send(self, record: dict[str, str], key: str) -> Outcome:
        """The page send under the intent's key, waiting for the server's answer."""
        message_id = record["message_id"]
        serialized = await self._wa_id(record, key)
        # bound before the send: an ack can overtake the send's own reply
        await self._messages.bind_wa_id(self._ws, message_id, serialized)
        started = time.monotonic()
        try:
            async with self._page_item(record, key) as item:
                # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that lands as the send
                # fails (the host closing the page does both), and the sender would outlive its page
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    sent = await self._page.send_item(item)
        except KindFailure as failure:
            await self._router.fail_or_failover({**record, "status": "sending"}, failure.reason,
                                                error=failure.code, failover=False, allowed=("sending",))
            return Outcome.FAILED
        except TargetNotFound:
            await self._router.fail_or_failover({**record, "status": "sending"}, TARGET_UNKNOWN,
                                                error=FailureCode.TARGET_NOT_FOUND, failover=False,
                                                allowed=("sending",))
            return Outcome.FAILED
        except (PageGone, TimeoutError):
            return self._later(message_id)  # resolved against the page on the next pass
        except Exception as exc:
            return await self._after_page_error(record, serialized, exc)
        if sent.refused:
            await self._refused(record)
            return Outcome.DONE
        await self._mark_sent(record, sent.id or serialized, send_ms=(time.monotonic() - started) * 1000)
        pacing = await self._pacing.policy(self._ws)
        if pacing.enabled:
            await self._pacing.record(self._ws, self._sid, message_id)
        try:
            await self._risk.after_send(record.get("to"), pacing.per_hour)
        except Exception:  # the message is sent: a failed stamp or score must not make it look otherwise
            log.exception("ban-risk bookkeeping after %s failed", message_id)
        return Outcome.DONE

    # ------------------------------------------------------------ kinds
    @contextlib.asynccontextmanager
    async def _page_item(self, record: dict[str, str], key: str) -> AsyncIterator[PageItem]:
        """The page's view of the message: targets resolved, contacts as vCards, media in a 0600 plain file
        that lives as long as the send. Raises KindFailure."""
        kind, content = content_of(record)
        quoted = target = None
        page_content: dict[str, Any] = content
        if kind == Kind.REACTION:
            target = await self._target(str(content.get("message_id") or ""))
            page_content = {"emoji": str(content.get("emoji") or "")}
        elif content.get("reply_to"):
            quoted = await self._target(str(content["reply_to"]))
        if kind == Kind.CONTACTS:
            page_content = {"vcards": page_cards(list(content.get("contacts") or []))}
        if kind not in MEDIA_KINDS:
            yield PageItem(record["to"], key, kind, page_content, quoted, target)
            return
        store = self._media_store()
        try:
            info = await media_for_send(store, self._ws, kind, content, self._guard)
        except MediaFailure as failure:
            raise KindFailure(failure.code, failure.reason) from None
        if content.get("media_id") != info.media_id:
            await self._messages.set_media(self._ws, record["message_id"], info.media_id)
        folder = Path(self._config.data_dir) / "send-tmp"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(_remove_stale_plain, folder)
        fd, path = tempfile.mkstemp(dir=folder, prefix="media-")
        os.close(fd)
        try:
            await store.export_plain(self._ws, info.media_id, path)
            filename = content.get("filename") or info.filename
            yield PageItem(record["to"], key, kind, {"caption": content.get("caption")}, quoted, target,
                           PageMedia(path, info.mimetype, filename))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _media_store(self) -> MediaStore:
        if self._media is None:
            self._media = media_store_for(self._redis, self._config)
            self._guard = guard_for(self._config)
        return self._media

    async def _target(self, ref: str) -> str:
        """The page message id a reply or reaction refers to: our message's WhatsApp id (this workspace's
        only, and only one sent from WhatsApp Web), or an inbound WhatsApp id as given."""
        if not ref.startswith("msg_"):
            return ref
        target = await self._messages.record(self._ws, ref)
        wa_id = target.get("wa_message_id") or ""
        if target.get("workspace_id") != self._ws or not wa_id.startswith(("true_", "false_")):
            raise KindFailure(FailureCode.TARGET_NOT_FOUND, TARGET_UNKNOWN)
        return wa_id

    async def _wa_id(self, record: dict[str, str], key: str) -> str:
        """Our message's serialized id (sessions/page.outgoing_id); in a group it names us too, by the number
        this session is linked to (its registry record, read once)."""
        if self._me is None and is_group_id(record["to"]):
            self._me = await self._redis.hget(keys.session(self._ws, self._sid), "me") or None
        return outgoing_id(record["to"], key, self._me)

    def _later(self, message_id: str) -> Outcome:
        """A `sending` message left unresolved for now; remembers since when (the bound counts from there)."""
        self._unresolved.setdefault(message_id, time.monotonic())
        return Outcome.LATER

    def _overdue(self, message_id: str) -> bool:
        first = self._unresolved.get(message_id)
        return first is not None and time.monotonic() - first >= UNRESOLVED_LIMIT_S

    async def _unconfirmed(self, record: dict[str, str], why: str) -> Outcome:
        log.warning("sender %s/%s: message %s failed unconfirmed (%s)", self._ws, self._sid,
                    record["message_id"], why)
        await self._router.fail_or_failover(record, UNCONFIRMED, failover=False, allowed=("sending",))
        return Outcome.FAILED

    async def _settle_ack(self, record: dict[str, str], serialized: str, ack: int) -> Outcome:
        """The live page holds the key: its ack says what became of the message."""
        if ack >= 1:
            await self._mark_sent(record, serialized)
            return Outcome.DONE
        if ack < 0:
            await self._refused(record)
            return Outcome.DONE
        return Outcome.LATER  # on this page, waiting for the server

    async def _refused(self, record: dict[str, str]) -> None:
        record = {**record, "status": "sending"}
        await self._router.fail_or_failover(record, "webjs: WhatsApp refused the message (ack -1)",
                                            allowed=("sending",))

    async def _after_page_error(self, record: dict[str, str], serialized: str, exc: Exception) -> Outcome:
        """The page is alive and threw: it either holds the message or never took it (then fail over)."""
        try:
            held = await self._page.ack_of(serialized)
        except PageGone:
            return self._later(record["message_id"])
        if held.ack is not None:
            outcome = await self._settle_ack(record, serialized, held.ack)
            return self._later(record["message_id"]) if outcome is Outcome.LATER else outcome
        log.warning("send %s failed on the page: %s", record["message_id"], exc)
        record = {**record, "status": "sending"}
        await self._router.fail_or_failover(record, f"webjs: {str(exc)[:400]}", allowed=("sending",))
        return Outcome.DONE

    async def _mark_sent(self, record: dict[str, str], wa_id: str, send_ms: float = 0.0) -> None:
        message_id = record["message_id"]
        if wa_id != await self._wa_id(record, record.get("wa_key", "")):  # else bound before the send
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
        record = await self._messages.get(self._ws, message_id)
        if record and record["status"] in ("delivered", "read") and not record.get("late_sent_event") \
                and not any(h.get("status") == "sent" for h in record["history"]):
            await self._events.publish(Event(MESSAGE_SENT, self._ws, self._sid, data))
            # once, on a later pass too
            await self._redis.hset(keys.message(self._ws, message_id), "late_sent_event", "1")

    # --------------------------------------------------------------- pacing
    async def _pace(self, length: int, to: str | None = None) -> bool:
        """Wait as the policy says; False when the session dropped meanwhile (the message stays queued).
        The ban-risk holds come first, then the pacing windows (a held session is paused either way).
        The typing delay shows as typing in the recipient's chat (then paused), as a person's would."""
        while True:
            policy = await self._pacing.policy(self._ws)
            hold = await self._risk.hold(to, policy.per_hour)
            decision = None
            if hold is None and policy.enabled:
                decision = decide(policy, await self._pacing.window(self._ws, self._sid))
                if decision.paused_until is not None:
                    hold = Hold("hourly_cap", decision.paused_until)
            if hold is None:
                break
            await self._set_paused(hold.reason, hold.resume_at)
            until = hold.resume_at if hold.resume_at is not None else time.time() + PAUSE_RECHECK_S
            await asyncio.sleep(max(0.05, min(PAUSE_RECHECK_S, until - time.time())))
            if not self.connected.is_set():
                return False
        await self._set_paused(None, None)
        if decision is None:  # pacing off
            return self.connected.is_set()
        typing = policy.typing_s(length)
        if decision.wait_s > 0:
            await asyncio.sleep(decision.wait_s)
        if typing > 0:
            await self._typing_for(to, typing)
        return self.connected.is_set()

    async def _typing_for(self, to: str | None, seconds: float) -> None:
        """Typing in the chat of `to` for `seconds`, then paused. The presence is a courtesy: a failed or
        slow chat state never fails the send, and holds it up by PRESENCE_WAIT_S at most."""
        from wa_ray.sessions.conversations import PageConversations
        from wa_ray.wa_ids import recipient_id

        chat = recipient_id(to) if to and self.connected.is_set() else None
        conv = PageConversations(self._page)
        if chat is not None:
            try:  # the delay counts from when the chat shows typing
                await asyncio.wait_for(conv.chat_state(chat, "typing"), PRESENCE_WAIT_S)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.debug("typing presence failed: %s", type(exc).__name__)
                chat = None
        await asyncio.sleep(seconds)
        if chat is not None:
            try:
                await asyncio.wait_for(conv.chat_state(chat, "paused"), PRESENCE_WAIT_S)
            except Exception as exc:  # noqa: BLE001
                log.debug("paused presence failed: %s", type(exc).__name__)

    async def _set_paused(self, reason: str | None, until: float | None, force: bool = False) -> None:
        """The paused marker (`{reason}|{resume_at}`, read by the headroom and the provider selector) and
        `session.paused` / `session.resumed` on each change of why the sender holds. A pause an operator
        ended (POST .../resume deletes the marker and publishes `session.resumed`) ends here quietly."""
        if reason == self._paused and not force:
            return
        previous, self._paused = self._paused, reason
        key = keys.session_paused(self._ws, self._sid)
        if reason is not None:
            ttl = max(1, int(until - time.time()) + 1) if until is not None else PAUSE_MARK_TTL_S
            await self._redis.set(key, f"{reason}|{'' if until is None else repr(until)}", ex=ttl)
            data = {"reason": reason, "resume_at": until}
            await self._events.publish(Event(SESSION_PAUSED, self._ws, self._sid, data))
        elif previous is not None:
            removed = await self._redis.delete(key)
            if removed or previous not in OPERATOR_RESUMABLE:
                await self._events.publish(Event(SESSION_RESUMED, self._ws, self._sid, {"reason": previous}))

    async def _paused_by_risk(self) -> None:
        """The ban-risk score reached the policy's `pause_at` (the gate set the pause): marked at once,
        so the headroom and the provider selector see it before the next send is due."""
        await self._set_paused("ban_risk", None, force=True)


def _remove_stale_plain(folder: Path) -> None:
    """Plain media files left by a process that died mid-send (a live send's file is far younger)."""
    cutoff = time.time() - STALE_PLAIN_S
    for entry in folder.glob("media-*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
