"""In-memory world of the WhatsApp Web simulator: phones, linked devices, pages, QR refs.

Everything here runs on the server's event loop (HTTP handlers and the page
WebSockets share it), so there is no locking. Pages are reached only through
the `send`/`close` callables of `PageConn`, which keeps this module free of
Starlette and easy to reason about.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from wa_ray.simulator.wa_web.config import PhoneConfig, SimConfig
from wa_ray.simulator.wa_web.mms import MmsStore
from wa_ray.simulator.wa_web.received import received_fields

log = logging.getLogger(__name__)

NUMBER_RE = re.compile(r"^[1-9][0-9]{4,14}$")
GROUP_RE = re.compile(r"^[0-9]+(-[0-9]+)?$")
# Crockford-ish alphabet: the real pairing codes avoid look-alike characters.
PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"
PAIRING_TTL_S = 180.0
MAX_PENDING_PER_DEVICE = 1000
# Expired refs are remembered for a while so a late scan says "expired", not "unknown".
REF_MEMORY_S = 900.0
# WebSocket close code used when the phone-side API drops a connection.
CLOSE_DROPPED = 4000

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[int], Awaitable[None]]


class SimError(Exception):
    """An error the HTTP edge turns into {"error": {...}} with a 4xx status."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def validate_number(number: str, what: str = "number") -> str:
    """Digits only, E.164 without '+'. A trailing '@c.us' is tolerated for convenience."""
    raw = number.removesuffix("@c.us")
    if not NUMBER_RE.match(raw):
        raise SimError(400, "invalid_number", f"{what} must be 5-15 digits (E.164 without '+')", {what: number})
    return raw


def group_wid(group_id: str) -> str:
    raw = group_id.removesuffix("@g.us")
    if not GROUP_RE.match(raw):
        raise SimError(
            400, "invalid_group", "group_id must look like 1203630xxxx or 1555-1700000000", {"group_id": group_id}
        )
    return f"{raw}@g.us"


def new_msg_id(prefix: str = "3A") -> str:
    # Phones use 3A.../ 3EB0... style hex ids; uniqueness is all that matters here.
    return prefix + secrets.token_hex(9).upper()


def lid_for(number: str) -> str:
    # Stable fake LID so the same phone keeps its LID across links.
    digest = int(hashlib.sha256(number.encode()).hexdigest()[:12], 16)
    return f"{digest % 10**14:014d}@lid"


@dataclass(frozen=True)
class QrKeys:
    """The four non-ref parts of the QR string, as the page announced them."""

    noise_pub: str
    identity_pub: str
    adv_secret: str
    platform: str

    def as_parts(self) -> list[str]:
        return [self.noise_pub, self.identity_pub, self.adv_secret, self.platform]


@dataclass
class RefRecord:
    ref: str
    page_id: str
    keys: QrKeys
    issued_at: float
    expires_at: float
    expired: bool = False


@dataclass
class PairingRecord:
    code: str
    number: str
    page_id: str
    expires_at: float
    used: bool = False


@dataclass
class Device:
    device_id: str
    number: str
    token: str
    linked_at: float
    pushname: str
    platform: str
    lid: str
    # Inbound messages that arrived while no page of this device was online.
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_seen: float = 0.0
    # Sends the server took from this device's pages (its answer may still be held back by `latency_ms`).
    sent: int = 0


@dataclass
class PageConn:
    page_id: str
    send: Send
    close: Close
    keys: QrKeys | None = None
    device_id: str | None = None
    # False after CONFLICT: another page took the device over.
    active: bool = True
    ref_task: asyncio.Task[None] | None = None
    connected_at: float = field(default_factory=time.time)
    # The seeded history version this page already holds (sent in its hello; None: nothing yet).
    history_version: str | None = None


@dataclass
class InboxEntry:
    id: str
    from_: str
    to: str
    body: str
    ts: float
    type: str = "chat"
    group_id: str | None = None
    via: str = "phone"  # "phone" or the sending device id
    extra: dict[str, Any] = field(default_factory=dict)  # a page-sent message's kind fields (received.py)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "from": self.from_,
            "to": self.to,
            "body": self.body,
            "ts": self.ts,
            "type": self.type,
            "via": self.via,
        }
        if self.group_id:
            out["group_id"] = self.group_id
        out.update(self.extra)
        return out


@dataclass
class Phone:
    number: str
    config: PhoneConfig
    inbox: list[InboxEntry] = field(default_factory=list)
    banned: bool = False
    dropped_until: float = 0.0
    # Until then another WhatsApp Web keeps taking the account back: a takeover or a new page gets CONFLICT.
    conflict_until: float = 0.0
    next_device: int = 1
    # What linked pages did in chats with this phone (conversations.py): read receipts, chat states.
    reads: list[dict[str, Any]] = field(default_factory=list)
    chatstates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Counters:
    refs_issued: int = 0
    scans: int = 0
    from_pages: int = 0
    to_pages: int = 0
    acks: int = 0
    failed: int = 0
    seen: int = 0


class SimState:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.phones: dict[str, Phone] = {}
        self.devices: dict[str, Device] = {}
        self.pages: dict[str, PageConn] = {}
        self.refs: dict[str, RefRecord] = {}
        self.pairings: dict[str, PairingRecord] = {}
        self.groups: dict[str, list[InboxEntry]] = {}
        self.counters = Counters()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.mms = MmsStore()  # what pages upload, named by directPath in the messages they send
        # Extensions (conversations.py) plug in here: page frame types they answer, and coroutines run
        # when a page is bound to a device, before it hears `paired`/`connected` (history sync).
        self.frame_handlers: dict[str, Callable[[PageConn, dict[str, Any]], Awaitable[None]]] = {}
        self.attach_hooks: list[Callable[[PageConn, Device], Awaitable[None]]] = []

    # ----------------------------------------------------------------- helpers
    def phone(self, number: str) -> Phone:
        number = validate_number(number)
        ph = self.phones.get(number)
        if ph is None:
            cfg = PhoneConfig(delivered_ms=self.config.default_delivered_ms, read_ms=self.config.default_read_ms)
            ph = self.phones[number] = Phone(number=number, config=cfg)
        return ph

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        # Keep a reference: the loop only holds weak refs to tasks. Errors are
        # logged, not raised: a page that vanished must not take others down.
        async def guarded() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("simulator task failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for page in list(self.pages.values()):
            if page.ref_task:
                page.ref_task.cancel()
        self.mms.close()

    def device_pages(self, device_id: str, active_only: bool = True) -> list[PageConn]:
        return [p for p in self.pages.values() if p.device_id == device_id and (p.active or not active_only)]

    def phone_devices(self, number: str) -> list[Device]:
        return [d for d in self.devices.values() if d.number == number]

    async def _safe_send(self, page: PageConn, payload: dict[str, Any]) -> None:
        try:
            await page.send(payload)
        except Exception as exc:  # noqa: BLE001 - a page that vanished mid-send is not an error
            log.debug("send to page %s failed: %s", page.page_id, exc)

    async def send_to_device(self, device_id: str, payload: dict[str, Any]) -> int:
        pages = self.device_pages(device_id)
        for page in pages:
            await self._safe_send(page, payload)
        return len(pages)

    # ------------------------------------------------------------- page life
    async def page_connected(self, page: PageConn) -> None:
        self.pages[page.page_id] = page
        await self._safe_send(page, {"type": "welcome", "page_id": page.page_id, "config": self.page_config()})

    def page_config(self) -> dict[str, Any]:
        c = self.config
        return {
            "sync_delay_ms": c.sync_delay_ms,
            "sync_fallback_ms": c.sync_fallback_ms,
            "logout_reload_ms": c.logout_reload_ms,
            "reconnect_ms": c.reconnect_ms,
            "page_cost": c.page_cost,
            "heavy_devices": c.heavy_devices,
        }

    async def config_changed(self) -> None:
        """Pages read their config at connect (`welcome`); open ones get the change too."""
        for page in list(self.pages.values()):
            await self._safe_send(page, {"type": "config", "config": self.page_config()})

    async def page_disconnected(self, page: PageConn) -> None:
        self.pages.pop(page.page_id, None)
        if page.ref_task:
            page.ref_task.cancel()
        if page.device_id and page.device_id in self.devices:
            self.devices[page.device_id].last_seen = time.time()

    async def on_page_message(self, page: PageConn, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "hello":
            await self._hello(page, data)
        elif kind == "send":
            await self._page_send(page, data.get("msg") or {})
        elif kind == "seen":
            self.counters.seen += 1
            if "seen" in self.frame_handlers:
                await self.frame_handlers["seen"](page, data)
        elif kind == "refresh_qr":
            # A live pairing code keeps the page UNPAIRED: no QR rotation (and no UNPAIRED_IDLE) behind it.
            live_code = any(r.page_id == page.page_id and not r.used and r.expires_at > time.monotonic()
                            for r in self.pairings.values())
            if page.device_id is None and not live_code and (page.ref_task is None or page.ref_task.done()):
                page.ref_task = self.spawn(self._ref_cycle(page))
        elif kind == "logout":
            # The page logged itself out (AppState.logout()): forget the device.
            if page.device_id:
                self._remove_device(page.device_id)
                page.device_id = None
        elif kind == "takeover":
            await self._takeover(page)
        elif kind == "pairing_request":
            await self._pairing_request(page, data)
        elif isinstance(kind, str) and kind in self.frame_handlers:
            await self.frame_handlers[kind](page, data)

    async def _hello(self, page: PageConn, data: dict[str, Any]) -> None:
        keys = data.get("keys") or {}
        held = data.get("history")
        page.history_version = held if isinstance(held, str) else None
        page.keys = QrKeys(
            noise_pub=str(keys.get("noise_pub", "")),
            identity_pub=str(keys.get("identity_pub", "")),
            adv_secret=str(keys.get("adv_secret", "")),
            platform=str(keys.get("platform", "")),
        )
        creds = data.get("creds")
        if creds:
            device = self.devices.get(str(creds.get("device_id")))
            if device is None or not secrets.compare_digest(device.token, str(creds.get("token", ""))):
                # Unlinked from the phone while this browser was away.
                await self._safe_send(page, {"type": "logged_out", "reason": "unlinked"})
                return
            phone = self.phones[device.number]
            if phone.dropped_until > time.monotonic():
                await page.close(CLOSE_DROPPED)
                return
            await self._attach(page, device, fresh=False)
            return
        if page.ref_task is None or page.ref_task.done():
            page.ref_task = self.spawn(self._ref_cycle(page))

    async def _attach(self, page: PageConn, device: Device, fresh: bool) -> None:
        """Bind a page to a device. A newer page wins; older ones get CONFLICT."""
        for other in self.device_pages(device.device_id):
            if other is not page:
                other.active = False
                await self._safe_send(other, {"type": "state", "state": "CONFLICT"})
        page.device_id = device.device_id
        page.active = True
        if page.ref_task:
            page.ref_task.cancel()
            page.ref_task = None
        device.last_seen = time.time()
        phone = self.phones[device.number]
        for hook in self.attach_hooks:
            await hook(page, device)
        # A banned account comes up blocked, one held elsewhere in conflict: never CONNECTED, nothing flushed.
        held = self._held_elsewhere(phone)
        page.active = not held
        payload: dict[str, Any] = {
            "type": "paired" if fresh else "connected",
            "me": self.identity(device),
            "state": "TOS_BLOCK" if phone.banned else "CONFLICT" if held else "CONNECTED",
        }
        if fresh:
            payload["creds"] = {"device_id": device.device_id, "token": device.token}
        await self._safe_send(page, payload)
        if phone.banned or held:
            return
        await self._flush_pending(page, device)

    async def _flush_pending(self, page: PageConn, device: Device) -> None:
        """Hand the messages that waited for an active page to this one (offline delivery)."""
        pending, device.pending = device.pending, []
        for msg in pending:
            self.counters.to_pages += 1
            await self._safe_send(page, {"type": "msg", "msg": msg, "offline": True})

    def identity(self, device: Device) -> dict[str, Any]:
        return {
            "number": device.number,
            "wid": f"{device.number}@c.us",
            "lid": device.lid,
            "pushname": device.pushname,
            "platform": device.platform,
            "device_id": device.device_id,
        }

    @staticmethod
    def _held_elsewhere(phone: Phone) -> bool:
        return phone.conflict_until > time.monotonic()

    async def _takeover(self, page: PageConn) -> None:
        if not page.device_id or page.device_id not in self.devices:
            return
        if self._held_elsewhere(self.phones[self.devices[page.device_id].number]):
            # the other WhatsApp Web takes the account straight back
            await self._safe_send(page, {"type": "state", "state": "CONFLICT"})
            return
        for other in self.device_pages(page.device_id):
            if other is not page:
                other.active = False
                await self._safe_send(other, {"type": "state", "state": "CONFLICT"})
        page.active = True
        device = self.devices[page.device_id]
        banned = self.phones[device.number].banned
        await self._safe_send(page, {"type": "state", "state": "TOS_BLOCK" if banned else "CONNECTED"})
        if not banned:
            # What arrived while no page held the session (CONFLICT everywhere) comes now.
            await self._flush_pending(page, device)

    # ---------------------------------------------------------------- QR refs
    async def _ref_cycle(self, page: PageConn) -> None:
        current: RefRecord | None = None
        try:
            for i in range(max(0, self.config.qr_max_refs)):
                ttl = self.config.qr_first_ttl_s if i == 0 else self.config.qr_next_ttl_s
                now = time.monotonic()
                assert page.keys is not None
                current = RefRecord(
                    ref="2@" + secrets.token_urlsafe(36),
                    page_id=page.page_id,
                    keys=page.keys,
                    issued_at=now,
                    expires_at=now + ttl,
                )
                self._remember_ref(current)
                self.counters.refs_issued += 1
                await page.send({"type": "ref", "ref": current.ref, "ttl_ms": int(ttl * 1000), "n": i + 1})
                await asyncio.sleep(ttl)
                current.expired = True
            current = None
            await page.send({"type": "idle"})
        finally:
            if current is not None:
                current.expired = True

    def _remember_ref(self, rec: RefRecord) -> None:
        cutoff = time.monotonic() - REF_MEMORY_S
        if len(self.refs) > 1000:
            for ref, old in list(self.refs.items()):
                if old.expires_at < cutoff:
                    del self.refs[ref]
        self.refs[rec.ref] = rec

    async def scan(self, number: str, qr: str, pushname: str | None = None) -> Device:
        phone = self.phone(number)
        parts = qr.split(",")
        if len(parts) != 5:
            raise SimError(400, "qr_invalid", "QR string must have 5 comma-separated parts", {"parts": len(parts)})
        rec = self.refs.get(parts[0])
        if rec is None or parts[1:] != rec.keys.as_parts():
            raise SimError(404, "qr_unknown", "this QR code was not issued by this simulator", {})
        page = self.pages.get(rec.page_id)
        if rec.expired or time.monotonic() >= rec.expires_at or page is None or page.device_id is not None:
            raise SimError(410, "qr_expired", "this QR code has expired", {"ref": rec.ref})
        device = self._new_device(phone, pushname)
        rec.expired = True
        self.counters.scans += 1
        await self._attach(page, device, fresh=True)
        return device

    def _new_device(self, phone: Phone, pushname: str | None) -> Device:
        if phone.banned:
            raise SimError(403, "banned", "this phone number is banned", {"number": phone.number})
        if len(self.phone_devices(phone.number)) >= self.config.max_devices:
            raise SimError(
                409,
                "too_many_devices",
                f"a phone links at most {self.config.max_devices} devices",
                {"max_devices": self.config.max_devices},
            )
        device_id = f"{phone.number}:{phone.next_device}"
        phone.next_device += 1
        device = Device(
            device_id=device_id,
            number=phone.number,
            token=secrets.token_urlsafe(24),
            linked_at=time.time(),
            pushname=pushname or phone.config.pushname or f"Sim {phone.number}",
            platform=phone.config.platform,
            lid=lid_for(phone.number),
        )
        self.devices[device_id] = device
        return device

    # ------------------------------------------------------------ pairing code
    async def _pairing_request(self, page: PageConn, data: dict[str, Any]) -> None:
        req = data.get("req")
        try:
            number = validate_number(str(data.get("phone", "")), "phone")
        except SimError as exc:
            await self._safe_send(page, {"type": "pairing_code", "req": req, "error": exc.code})
            return
        if page.ref_task:
            # Phone-number linking replaces the QR on the real page.
            page.ref_task.cancel()
            page.ref_task = None
        now = time.monotonic()
        for old_code, old in list(self.pairings.items()):
            if old.page_id == page.page_id:
                old.used = True  # a new code replaces the one the page showed before
            if old.expires_at + REF_MEMORY_S < now:
                del self.pairings[old_code]
        code = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(8))
        self.pairings[code] = PairingRecord(
            code=code, number=number, page_id=page.page_id, expires_at=time.monotonic() + PAIRING_TTL_S
        )
        await self._safe_send(page, {"type": "pairing_code", "req": req, "code": code})

    async def link_with_code(self, number: str, code: str) -> Device:
        phone = self.phone(number)
        norm = code.replace("-", "").replace(" ", "").upper()
        rec = self.pairings.get(norm)
        if rec is None or rec.number != phone.number:
            raise SimError(404, "code_unknown", "no pending pairing code for this number", {})
        page = self.pages.get(rec.page_id)
        if rec.used or time.monotonic() >= rec.expires_at or page is None or page.device_id is not None:
            raise SimError(410, "code_expired", "this pairing code has expired", {})
        device = self._new_device(phone, None)
        rec.used = True
        await self._attach(page, device, fresh=True)
        return device

    # ---------------------------------------------------------------- unlink
    def _remove_device(self, device_id: str) -> Device | None:
        return self.devices.pop(device_id, None)

    async def unlink(self, number: str, device_id: str | None = None) -> list[str]:
        phone = self.phone(number)
        targets = [d for d in self.phone_devices(phone.number) if device_id is None or d.device_id == device_id]
        if device_id is not None and not targets:
            raise SimError(404, "device_unknown", "no such linked device", {"device_id": device_id})
        for device in targets:
            self._remove_device(device.device_id)
            for page in self.device_pages(device.device_id, active_only=False):
                page.device_id = None
                await self._safe_send(page, {"type": "logged_out", "reason": "unlinked"})
        return [d.device_id for d in targets]

    # -------------------------------------------------------------- messages
    def _later(self, delay_ms: float, coro: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            await coro

        self.spawn(run())

    async def _ack(self, device_id: str, key: str, ack: int) -> None:
        self.counters.acks += 1
        await self.send_to_device(device_id, {"type": "ack", "key": key, "ack": ack})

    async def _page_send(self, page: PageConn, msg: dict[str, Any]) -> None:
        key = str(msg.get("key", ""))
        device = self.devices.get(page.device_id or "")
        sender = self.phones[device.number] if device else None
        if device is None or sender is None or not page.active or sender.banned:
            # Not linked, taken over elsewhere, or a banned account: the server refuses it.
            self.counters.failed += 1
            await self._safe_send(page, {"type": "ack", "key": key, "ack": -1})
            return
        self.counters.from_pages += 1
        device.sent += 1
        self._later(sender.config.latency_ms, self._route_page_send(device, msg))

    async def _route_page_send(self, device: Device, msg: dict[str, Any]) -> None:
        key = str(msg.get("key", ""))
        to = str(msg.get("to", ""))
        entry_kw: dict[str, Any] = {
            "id": str(msg.get("id", "")),
            "body": str(msg.get("body") or ""),
            "ts": time.time(),
            "type": str(msg.get("type") or "chat"),
            "via": device.device_id,
            "extra": received_fields(msg, self.mms),
        }
        if to.endswith("@g.us"):
            # Groups have no recipient phone: keep a log and ack with sim defaults.
            self.groups.setdefault(to, []).append(InboxEntry(from_=device.number, to=to, group_id=to, **entry_kw))
            await self._ack(device.device_id, key, 1)
            self._schedule_acks(device.device_id, key, self.config.default_delivered_ms, self.config.default_read_ms)
            return
        try:
            rnum = self._lid_owner(to) if to.endswith("@lid") else validate_number(to, "to")
        except SimError:
            self.counters.failed += 1
            await self._ack(device.device_id, key, -1)
            return
        recipient = self.phone(rnum)
        if recipient.config.fail_rate > 0 and random.random() < recipient.config.fail_rate:
            self.counters.failed += 1
            await self._ack(device.device_id, key, -1)
            return
        # Record every send, repeated ids included: duplicates must stay visible.
        recipient.inbox.append(InboxEntry(from_=device.number, to=rnum, **entry_kw))
        if "reaction" in entry_kw["extra"]:
            self._react(recipient, device.number, entry_kw["extra"]["reaction"])
        await self._ack(device.device_id, key, 1)
        self._schedule_acks(device.device_id, key, recipient.config.delivered_ms, recipient.config.read_ms)
        if rnum != device.number:
            # The recipient may itself be a simulated Web session: deliver there too.
            inbound = {
                "id": entry_kw["id"],
                "from": f"{device.number}@c.us",
                "to": f"{rnum}@c.us",
                "author": None,
                "body": entry_kw["body"],
                "t": int(time.time()),
                "type": "chat",
                "notifyName": device.pushname,
            }
            self._later(recipient.config.latency_ms, self._deliver_inbound(rnum, inbound))

    @staticmethod
    def _react(recipient: Phone, sender: str, reaction: dict[str, Any]) -> None:
        """A reaction from `sender` on one of its messages in `recipient`'s inbox: set, or removed by ""."""
        for entry in recipient.inbox:
            if entry.id == reaction["target_id"] and entry.from_ == sender and reaction["target_from_me"]:
                reactions = entry.extra.setdefault("reactions", {})
                if reaction["emoji"]:
                    reactions[sender] = reaction["emoji"]
                else:
                    reactions.pop(sender, None)

    def _schedule_acks(self, device_id: str, key: str, delivered_ms: int | None, read_ms: int | None) -> None:
        if delivered_ms is None:
            return
        self._later(delivered_ms, self._ack(device_id, key, 2))
        if read_ms is not None:
            # A message is never read before it is delivered.
            self._later(max(read_ms, delivered_ms) + 1, self._ack(device_id, key, 3))

    async def _deliver_inbound(self, number: str, msg: dict[str, Any]) -> None:
        for device in self.phone_devices(number):
            if self.phones[number].banned:
                continue
            if self.device_pages(device.device_id):
                self.counters.to_pages += 1
                await self.send_to_device(device.device_id, {"type": "msg", "msg": msg})
            elif len(device.pending) < MAX_PENDING_PER_DEVICE:
                device.pending.append(msg)

    def deliver_later(self, number: str, msg: dict[str, Any]) -> None:
        """Hand `msg` to `number`'s linked pages after its latency (kept for a device that is offline)."""
        self._later(self.phone(number).config.latency_ms, self._deliver_inbound(number, msg))

    def number_of_lid(self, lid: str) -> str | None:
        """The phone behind a phone's @lid, as the WhatsApp server knows it (a page may not: see phone_send)."""
        return next((n for n in self.phones if lid_for(n) == lid), None)

    def _lid_owner(self, lid: str) -> str:
        number = self.number_of_lid(lid)
        if number is None:
            raise SimError(404, "lid_unknown", "no phone has this lid", {})
        return number

    async def phone_send(self, number: str, to: str, body: str, group_id: str | None, msg_type: str = "chat",
                         as_lid: bool = False, pn_known: bool = True) -> str:
        """A phone's text to `to`. With `as_lid` it comes from the phone's lid (the chat of a 1:1, the author
        in a group) as LID-addressed messages do; the phone behind it travels with it (`sender_pn`, or
        `participant_pn` in a group) only when `pn_known`, so otherwise the page cannot resolve it."""
        sender = self.phone(number)
        rnum = validate_number(to, "to")
        recipient = self.phone(rnum)
        msg_id = new_msg_id()
        gwid = group_wid(group_id) if group_id else None
        now = time.time()
        recipient.inbox.append(
            InboxEntry(id=msg_id, from_=sender.number, to=rnum, body=body, ts=now, type=msg_type, group_id=gwid)
        )
        if gwid:
            self.groups.setdefault(gwid, []).append(
                InboxEntry(id=msg_id, from_=sender.number, to=gwid, body=body, ts=now, type=msg_type, group_id=gwid)
            )
        sender_wid = lid_for(sender.number) if as_lid else f"{sender.number}@c.us"
        inbound = {
            "id": msg_id,
            "from": gwid or sender_wid,
            "to": f"{rnum}@c.us",
            "author": sender_wid if gwid else None,
            "body": body,
            "t": int(now),
            "type": msg_type,
            "notifyName": sender.config.pushname or f"Phone {sender.number}",
        }
        if as_lid and pn_known:
            inbound["participant_pn" if gwid else "sender_pn"] = f"{sender.number}@c.us"
        self._later(recipient.config.latency_ms, self._deliver_inbound(rnum, inbound))
        return msg_id

    # ----------------------------------------------------- faults / control
    async def drop(self, number: str, seconds: float) -> int:
        phone = self.phone(number)
        phone.dropped_until = time.monotonic() + seconds
        closed = 0
        for device in self.phone_devices(phone.number):
            for page in self.device_pages(device.device_id, active_only=False):
                closed += 1
                try:
                    await page.close(CLOSE_DROPPED)
                except Exception as exc:  # noqa: BLE001 - already gone is as good as dropped
                    log.debug("closing page %s failed: %s", page.page_id, exc)
        return closed

    async def ban(self, number: str, banned: bool) -> None:
        phone = self.phone(number)
        phone.banned = banned
        state = "TOS_BLOCK" if banned else "CONNECTED"
        for device in self.phone_devices(phone.number):
            await self.send_to_device(device.device_id, {"type": "state", "state": state})

    async def conflict(self, number: str, seconds: float = 0.0) -> int:
        """Pretend the account was opened elsewhere: every live page goes CONFLICT. For `seconds` that other
        WhatsApp Web keeps taking it back (it takes over on conflict itself): takeovers and new pages get
        CONFLICT too."""
        phone = self.phone(number)
        phone.conflict_until = time.monotonic() + seconds
        hit = 0
        for device in self.phone_devices(phone.number):
            for page in self.device_pages(device.device_id):
                page.active = False
                hit += 1
                await self._safe_send(page, {"type": "state", "state": "CONFLICT"})
        return hit

    # ------------------------------------------------------------- read side
    def devices_of(self, number: str) -> list[dict[str, Any]]:
        phone = self.phone(number)
        return [
            {
                "device_id": d.device_id,
                "linked_at": d.linked_at,
                "online": bool(self.device_pages(d.device_id)),
                "pushname": d.pushname,
                "platform": d.platform,
                "pending": len(d.pending),
                "sent": d.sent,
            }
            for d in self.phone_devices(phone.number)
        ]

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "pages": len(self.pages),
            "linked_pages": sum(1 for p in self.pages.values() if p.device_id),
            "devices": len(self.devices),
            "phones": len(self.phones),
            "refs_issued": c.refs_issued,
            "scans": c.scans,
            "messages": {
                "from_pages": c.from_pages,
                "to_pages": c.to_pages,
                "acks": c.acks,
                "failed": c.failed,
                "seen": c.seen,
            },
        }
