"""WhatsApp Web inbound, normalized: what the page bridge reports becomes the typed event data of
`message.received`, `message.reaction`, `message.revoked` and `message.edited` (the contract in
wa_ray/message_kinds.py and the Events section of the design).

The bridge (sessions/bridge.js) reports the fields whatsapp-web.js 1.34.7 reads from the page's Msg model;
the mapping functions hold no I/O of their own: the media download (`fetch_media`, normally
`PageMediaIntake.fetch`) and the lookup of our own message by its WhatsApp id (`message_of`) are handed in.

Invariants:
* The page's report is untrusted shape: every field is type-checked and bounded; a wrong one is dropped
  (None), never an exception, so one odd message cannot stop a session's inbound.
* `kind` is a `Kind` value or "unknown"; `type` keeps WhatsApp's own type.
* Addressing (`addressing`): `from` is a phone number only from a `@c.us` id or the phone wid the page
  resolved a `@lid` to (the bridge's `from_pn`/`author_pn`); a `@lid` itself is never read as a number. In
  a group the sender is the author, never the group.
* `text` is the text of a text message, the caption of a media message, else None.
* `reply_to.message_id` / `target_message_id` / `message_id` name our message only when the WhatsApp id
  is one of this workspace's (MessageStore.by_wa_id), else None.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from wa_ray.actors.media_intake import DEFAULT_TIMEOUT_S, intake
from wa_ray.events import MESSAGE_EDITED, MESSAGE_REACTION, MESSAGE_REVOKED
from wa_ray.json_fields import number_of, string_of
from wa_ray.message_kinds import MEDIA_KINDS, Kind
from wa_ray.runtime import RuntimeConfig
from wa_ray.sessions.media_access import media_store_for
from wa_ray.sessions.page_media import MediaUnavailable, PageMedia
from wa_ray.sessions.state import PageSignal
from wa_ray.storage.media import MediaStore, MediaTooLarge
from wa_ray.storage.media_pending import PendingMedia, PendingMediaStore, stable_media_id
from wa_ray.storage.media_policy import MediaPolicyStore
from wa_ray.storage.messages import WEBJS
from wa_ray.wa_ids import is_lid, phone_of

log = logging.getLogger(__name__)

# WhatsApp's message types (Msg.type) and the kind each is.
WA_TYPE_KIND: dict[str, Kind] = {
    "chat": Kind.TEXT,
    "image": Kind.IMAGE,
    "video": Kind.VIDEO,
    "audio": Kind.AUDIO,
    "ptt": Kind.VOICE,
    "document": Kind.DOCUMENT,
    "sticker": Kind.STICKER,
    "location": Kind.LOCATION,
    "vcard": Kind.CONTACTS,
    "multi_vcard": Kind.CONTACTS,
    "poll_creation": Kind.POLL,
}
UNKNOWN = "unknown"
TEXT_MAX = 65536
VCARD_MAX = 16384
VCARDS_MAX = 50
ID_MAX = 256

# The page's description of a received media -> the event's `media` object (actors/media_intake.py).
FetchMedia = Callable[["PageMediaInfo"], Awaitable[dict[str, Any]]]
MessageOf = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class PageMediaInfo:
    """What the page announced of a media; the bytes are fetched only if the policy says so."""

    wa_message_id: str
    mimetype: str
    filename: str | None
    size: int | None
    sha256: str | None  # hex, from WhatsApp's filehash (base64 SHA-256 of the plain bytes)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= ID_MAX else None


def number(wid: Any) -> str | None:
    """The phone number of a `@c.us` id; None for a group, a `@lid` (never a number made from it) or
    anything else (wa_ray/wa_ids.phone_of)."""
    return phone_of(wid)


def sender_number(wid: Any, pn: Any) -> str | None:
    """The sender's phone: its own `@c.us` id's number, else the phone wid the page resolved a `@lid` to."""
    return phone_of(wid) or phone_of(pn)


def addressing(msg: dict[str, Any]) -> dict[str, Any] | None:
    """Who wrote a page message and where (the contract's section 5): `chat_id`, `from` (the sender's
    phone or None), `from_id` (the sender's id as the page reports it, a `@lid` kept opaque), `author`
    (in a group, the participant: its phone id where the page knows it, else its `@lid`; None in a 1:1
    chat) and `is_group`. None when the report names no chat.

    A received message's `from` is its chat (the group, in a group) and `author` the participant; one of
    ours (fromMe) has the chat in `to`."""
    from_me = msg.get("fromMe") is True
    chat = _id(msg.get("to") if from_me else msg.get("from")) or _id(msg.get("from"))
    if chat is None:
        return None
    group = chat.endswith("@g.us")
    author = _id(msg.get("author"))
    if group:
        sender, sender_pn = author, _id(msg.get("author_pn"))
    else:
        sender, sender_pn = _id(msg.get("from")), _id(msg.get("from_pn"))
    resolved = sender_pn if sender is not None and is_lid(sender) and phone_of(sender_pn) else sender
    return {
        "chat_id": chat,
        "from": sender_number(sender, sender_pn),
        "from_id": sender,
        "author": resolved if group else None,
        "is_group": group,
    }


def kind_of(wa_type: Any) -> str:
    kind = WA_TYPE_KIND.get(wa_type) if isinstance(wa_type, str) else None
    return kind.value if kind is not None else UNKNOWN


def hex_sha256(filehash: Any) -> str | None:
    """WhatsApp's base64 filehash as hex; None unless it is a SHA-256."""
    if not isinstance(filehash, str) or len(filehash) > 64:
        return None
    try:
        raw = base64.b64decode(filehash, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def location_of(raw: Any) -> dict[str, Any] | None:
    """WhatsApp keeps name and address in `loc`, one per line."""
    if not isinstance(raw, dict):
        return None
    lat, lng = number_of(raw.get("lat")), number_of(raw.get("lng"))
    if lat is None or lng is None:
        return None
    lines = (string_of(raw.get("loc"), 2048) or "").split("\n", 1)
    name = lines[0].strip() or None
    address = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return {"latitude": lat, "longitude": lng, "name": name, "address": address}


def _vcard_lines(vcard: str) -> list[str]:
    """Unfolded lines (RFC 6350: a line starting with a space or tab continues the previous one)."""
    lines: list[str] = []
    for line in vcard.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line:
            lines.append(line)
    return lines


def contact_of(vcard: str) -> dict[str, Any]:
    """One contact of the event from a vCard: its FN and TEL lines (with WhatsApp's `waid` parameter)."""
    formatted = ""
    phones: list[dict[str, Any]] = []
    for line in _vcard_lines(vcard):
        head, _, value = line.partition(":")
        params = head.split(";")
        name = params[0].split(".")[-1].upper()  # item1.TEL -> TEL
        if name == "FN" and not formatted:
            formatted = value.strip()
        elif name == "TEL" and value.strip():
            phone: dict[str, Any] = {"phone": value.strip()}
            for param in params[1:]:
                key, _, val = param.partition("=")
                if key.lower() == "waid" and val.isdigit():
                    phone["wa_id"] = val
            phones.append(phone)
    return {"name": {"formatted_name": formatted}, "phones": phones, "vcard": vcard}


def contacts_of(raw: Any) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list):
        return None
    cards = [c for c in raw[:VCARDS_MAX] if isinstance(c, str) and 0 < len(c) <= VCARD_MAX]
    return [contact_of(c) for c in cards]


async def received(msg: dict[str, Any], *, fetch_media: FetchMedia,
                   message_of: MessageOf) -> dict[str, Any] | None:
    """The data of `message.received` for one message the bridge reported (`msg` has a string `id`);
    None for a report without its chat, which names no conversation to put it in."""
    where = addressing(msg)
    if where is None:
        return None
    wa_type = string_of(msg.get("type"), 64)
    kind = kind_of(wa_type)
    data: dict[str, Any] = {
        "wa_message_id": msg["id"],
        **where,
        "to": number(msg.get("to")),
        "text": string_of(msg.get("body"), TEXT_MAX) if kind == Kind.TEXT else None,
        "type": wa_type,
        "kind": kind,
        "timestamp": _int(msg.get("t")),
        "provider": WEBJS,
    }
    media = msg.get("media")
    if kind in MEDIA_KINDS and isinstance(media, dict):
        data["text"] = string_of(media.get("caption"), TEXT_MAX)
        size = _int(media.get("size"))
        info = PageMediaInfo(wa_message_id=msg["id"], mimetype=string_of(media.get("mimetype"), 255) or "",
                             filename=string_of(media.get("filename"), 1024),
                             size=size if size is not None and size >= 0 else None,
                             sha256=hex_sha256(media.get("filehash")))
        data["media"] = await fetch_media(info)
    elif kind == Kind.LOCATION:
        data["location"] = location_of(msg.get("location"))
    elif kind == Kind.CONTACTS:
        data["contacts"] = contacts_of(msg.get("vcards"))
    quoted = msg.get("quoted")
    quoted_id = _id(quoted.get("id")) if isinstance(quoted, dict) else None
    if quoted_id is not None:
        data["reply_to"] = {"wa_message_id": quoted_id, "message_id": await message_of(quoted_id)}
    return data


@dataclass(frozen=True)
class MessageChange:
    """An event about a message already there; `dedupe` names it once across redeliveries."""

    type: str
    data: dict[str, Any]
    dedupe: str

    @property
    def target(self) -> str:
        """The WhatsApp id of the message this change is about."""
        return str(self.data.get("target_wa_message_id") or self.data["wa_message_id"])


class InFlight:
    """Messages of this process between their report and their `message.received`.

    Signals are handled concurrently (a media message waits for its download), so a revoke, edit or
    reaction that follows a message on the page could otherwise be published before it; `settled` holds
    such a change until its message is out, bounded by the media wait."""

    def __init__(self, wait_s: float = DEFAULT_TIMEOUT_S + 5) -> None:
        self._wait_s = wait_s
        self._open: dict[tuple[str, str], asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def track(self, ws: str, wa_id: str) -> AsyncIterator[None]:
        if (ws, wa_id) in self._open:  # a repeat report of a message in flight: the first one's event stands
            yield
            return
        done = self._open[(ws, wa_id)] = asyncio.Event()
        try:
            yield
        finally:
            done.set()
            if self._open.get((ws, wa_id)) is done:
                del self._open[(ws, wa_id)]

    async def settled(self, ws: str, wa_id: str) -> None:
        pending = self._open.get((ws, wa_id))
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pending.wait(), self._wait_s)


async def change(kind: PageSignal, payload: dict[str, Any], *, message_of: MessageOf) -> MessageChange | None:
    """The event of a `reaction`, `revoke` or `edit` page signal; None for a payload without its ids."""
    sender = sender_number(payload.get("from"), payload.get("from_pn"))
    if kind is PageSignal.REACTION:
        reaction_id, target = _id(payload.get("id")), _id(payload.get("target"))
        emoji = string_of(payload.get("emoji"), 64)
        if reaction_id is None or target is None or emoji is None:
            return None
        return MessageChange(MESSAGE_REACTION, {
            "wa_message_id": reaction_id, "target_wa_message_id": target,
            "target_message_id": await message_of(target), "emoji": emoji, "from": sender, "provider": WEBJS,
        }, f"reaction:{reaction_id}")
    wa_id = _id(payload.get("id"))
    if wa_id is None:
        return None
    if kind is PageSignal.REVOKE:
        return MessageChange(MESSAGE_REVOKED, {
            "wa_message_id": wa_id, "message_id": await message_of(wa_id), "from": sender, "provider": WEBJS,
        }, f"revoke:{wa_id}")
    if kind is PageSignal.EDIT:
        edit_id = _id(payload.get("edit_id"))
        text = string_of(payload.get("text"), TEXT_MAX)
        if edit_id is None:
            return None
        return MessageChange(MESSAGE_EDITED, {
            "wa_message_id": wa_id, "message_id": await message_of(wa_id), "text": text, "from": sender,
            "provider": WEBJS,
        }, f"edit:{edit_id}")
    return None


class PageMediaIntake:
    """A received media from its page into the media store, under the workspace's media policy
    (actors/media_intake.py decides whether and how much is downloaded). The store is opened on first use,
    so a process that never receives media never reads the key material. Under a `lazy` policy only the
    session and the WhatsApp id are recorded (`pending`); the page is asked for the bytes on the first GET
    (BrowserHost.download_pending)."""

    def __init__(self, redis: aioredis.Redis, config: RuntimeConfig) -> None:
        self._redis, self._config = redis, config
        self._store: MediaStore | None = None
        self._policies = MediaPolicyStore(redis)
        self._pending = PendingMediaStore(redis, config.media_retention_s)

    def store(self) -> MediaStore:
        if self._store is None:
            self._store = media_store_for(self._redis, self._config)
        return self._store

    async def fetch(self, ws: str, info: PageMediaInfo, page: PageMedia | None, *,
                    sid: str | None = None) -> dict[str, Any]:
        policy = await self._policies.get(ws)

        async def chunks() -> Any:
            if page is None:
                raise MediaUnavailable(info.wa_message_id)
            return await page.chunks(info.wa_message_id)

        # The id a sync or a listing of this message announces too (actors/history_messages.py): one media,
        # one id, whichever way the backend heard of it first.
        key = f"{sid}\x00{info.wa_message_id}" if sid is not None else None

        async def defer(described: dict[str, Any]) -> str:
            if key is None:
                raise MediaUnavailable(info.wa_message_id)
            return (await self._pending.allot_stable(ws, key, source="webjs", max_bytes=policy.max_bytes, locator={
                "session_id": str(sid), "wa_message_id": info.wa_message_id}, **described)).media_id

        return await intake(self.store(), policy, ws, mimetype=info.mimetype, filename=info.filename,
                            size_hint=info.size, sha256=info.sha256, chunks_factory=chunks, defer=defer,
                            media_id=stable_media_id(ws, key) if key is not None else None)

    async def store_pending(self, pending: PendingMedia, page: PageMedia) -> str:
        """`stored` (under the id the event announced), `too_large` (over the cap of the policy at receipt),
        or `unavailable` (the page cannot give it, or the download failed or took longer than the wait)."""
        chunks: AsyncIterator[bytes] | None = None
        try:
            async with asyncio.timeout(DEFAULT_TIMEOUT_S):
                chunks = await page.chunks(pending.locator.get("wa_message_id", ""))
                await self.store().put(pending.workspace_id, chunks, mimetype=pending.mimetype,
                                       filename=pending.filename, max_bytes=pending.max_bytes,
                                       media_id=pending.media_id)
        except MediaTooLarge:
            return "too_large"
        except Exception as exc:  # noqa: BLE001 - the caller answers with a clear error, not a trace
            log.warning("pending media of workspace %s not stored: %s", pending.workspace_id, type(exc).__name__)
            return "unavailable"
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        return "stored"
