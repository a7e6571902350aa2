"""A phone's existing history (chats, messages, contacts, groups), generated deterministically from a seed.

A real phone hands a newly linked (or restored) device its recent history before the device reports
`hasSynced`; the device holds only the latest messages of each chat (about 50) and asks the phone for
older ones when the user scrolls up (`loadEarlierMsgs`). `History` keeps all of it on the phone side:
`sync_frames()` gives what the page gets at sync, `earlier()` what it gets on a scroll.

Invariants: the same body and seed give the same chat ids, names, message ids, bodies and order; only the
timestamps follow the moment of seeding (spread over the last `days` days, newest chat first, strictly
decreasing per chat, each chat's `t` = its last message's `t`). A lid contact's phone is known to the page
(`lid_pn`) only for the `lid_contacts`; the `lid_unknown` ones never get a phone on the page.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wa_ray.simulator.wa_web import media_crypto

LOADED_PER_CHAT = 50  # what the page holds of each chat after sync (real WhatsApp Web: about 50)
EARLIER_PAGE = 50  # messages per loadEarlierMsgs answer
FRAME_CHATS = 250  # chats per sync frame (keeps each WebSocket frame well under a few MB)
HISTORY_DIRECT_PREFIX = "/v/t62.7118-24/"  # the same media server path as live media
FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena", "Mo", "Nia",
               "Omar", "Pia", "Quinn", "Rui", "Sara", "Tom", "Uma", "Vik", "Wen", "Yara", "Zoe"]
WORDS = ["hello", "invoice", "tomorrow", "thanks", "order", "delivery", "price", "meeting", "photo", "address",
         "ok", "great", "when", "please", "confirm", "payment", "today", "call", "later", "sure"]


class HistoryBody(BaseModel):
    """`POST /_phone/{n}/history`: `groups`, `lid_contacts` and `lid_unknown` are chats among the `chats`."""

    model_config = ConfigDict(extra="forbid")

    chats: int = Field(default=20, ge=0, le=20_000)
    messages_per_chat: int = Field(default=5, ge=0, le=2_000)
    groups: int = Field(default=2, ge=0)
    contacts: int = Field(default=10, ge=0, le=50_000)
    lid_contacts: int = Field(default=1, ge=0)
    lid_unknown: int = Field(default=1, ge=0)
    days: int = Field(default=30, ge=1, le=3650)
    seed: int = Field(default=1, ge=0, le=2**31)

    @model_validator(mode="after")
    def _fits(self) -> HistoryBody:
        special = ("groups", "lid_contacts", "lid_unknown")
        if not self.model_fields_set & set(special):  # defaults shrink to fit a small history
            left = self.chats
            for name in special:
                setattr(self, name, min(getattr(self, name), left))
                left -= getattr(self, name)
        if self.groups + self.lid_contacts + self.lid_unknown > self.chats:
            raise ValueError("groups + lid_contacts + lid_unknown must not exceed chats")
        if self.chats * self.messages_per_chat > 500_000:
            raise ValueError("at most 500,000 messages in a history")
        return self


def png(seed: int) -> bytes:
    """A tiny valid 2x2 RGB PNG whose colour follows `seed` (the history's picture)."""
    r, g, b = seed * 37 % 256, seed * 91 % 256, seed * 53 % 256
    raw = b"".join(b"\x00" + bytes([r, g, b]) * 2 for _ in range(2))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _hex(*parts: object, n: int = 18) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).hexdigest()[:n].upper()


@dataclass
class History:
    """One phone's seeded history. `version` changes with every seeding (pages reload on a new one)."""

    owner: str
    version: str
    chats: list[dict[str, Any]]  # newest first, without messages
    messages: dict[str, list[dict[str, Any]]]  # chat id -> oldest to newest
    contacts: list[dict[str, Any]]
    groups: dict[str, dict[str, Any]]  # group id -> metadata with participants
    lid_pn: dict[str, str]  # lid -> phone wid, only where the page knows it
    lids_unknown: set[str]
    numbers: set[str]  # every phone number in the history (registered on WhatsApp)
    media: dict[str, bytes] = field(default_factory=dict)  # token -> encrypted file
    _pos: dict[str, dict[str, int]] = field(default_factory=dict)  # chat -> message id -> index

    def sync_frames(self) -> list[dict[str, Any]]:
        """The page's initial load: contacts first, then chats with their latest messages, in frames."""
        frames: list[dict[str, Any]] = []
        base = {"type": "history", "version": self.version}
        frames.append({**base, "part": "contacts", "contacts": self.contacts, "lid_pn": self.lid_pn})
        for start in range(0, len(self.chats), FRAME_CHATS):
            batch = []
            for chat in self.chats[start:start + FRAME_CHATS]:
                msgs = self.messages[chat["id"]]
                batch.append({**chat, "msgs": msgs[-LOADED_PER_CHAT:], "more": len(msgs) > LOADED_PER_CHAT,
                              "group": self.groups.get(chat["id"])})
            frames.append({**base, "part": "chats", "chats": batch})
        frames.append({**base, "part": "done", "chats": len(self.chats), "contacts": len(self.contacts)})
        return frames

    def earlier(self, chat_id: str, before_id: str, limit: int = EARLIER_PAGE) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` messages older than `before_id` (oldest to newest) and whether still older exist."""
        msgs = self.messages.get(chat_id)
        if not msgs:
            return [], False
        if not self._pos.get(chat_id):
            self._pos[chat_id] = {m["id"]: i for i, m in enumerate(msgs)}
        end = self._pos[chat_id].get(before_id)
        if end is None:
            return [], False
        start = max(0, end - max(1, limit))
        return msgs[start:end], start > 0


class _Builder:
    """Generates a History; kept apart so `History` stays a plain value."""

    def __init__(self, owner: str, body: HistoryBody, now: float) -> None:
        self.owner, self.body, self.now = owner, body, int(now)
        self.seed = body.seed
        self.version = _hex("v", owner, body.model_dump_json(), now, n=12)
        self.media: dict[str, bytes] = {}
        self.image_attrs = self._image()

    def _image(self) -> dict[str, Any]:
        picture = png(self.seed)
        enc = media_crypto.encrypt(picture, "image")
        token = f"H{self.version}.enc"
        self.media[token] = enc.enc
        return {"mimetype": "image/png", "size": len(picture), "directPath": HISTORY_DIRECT_PREFIX + token,
                "mediaKey": base64.b64encode(enc.media_key).decode(), "mediaKeyTimestamp": self.now,
                "filehash": enc.filehash, "encFilehash": enc.enc_filehash}

    def number(self, i: int) -> str:
        # 12 digits: "19" + 3 digits of the seed + 7 of the index; never the owner itself.
        n = f"19{self.seed % 1000:03d}{i:07d}"
        return n if n != self.owner else f"18{self.seed % 1000:03d}{i:07d}"

    def lid(self, i: int) -> str:
        return f"{int(_hex('lid', self.seed, i, n=12), 16) % 10**14:014d}@lid"

    def name(self, i: int) -> str:
        return f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {i}"

    def text(self, chat_i: int, k: int) -> str:
        h = int(_hex("t", self.seed, chat_i, k, n=8), 16)
        words = [WORDS[(h >> (4 * j)) % len(WORDS)] for j in range(2 + h % 5)]
        return f"{' '.join(words)} #{chat_i}.{k}"

    def build(self) -> History:
        b = self.body
        contacts: dict[str, dict[str, Any]] = {}
        lid_pn: dict[str, str] = {}
        lids_unknown: set[str] = set()
        numbers: set[str] = set()

        def person(i: int, saved: bool) -> dict[str, Any]:
            num = self.number(i)
            numbers.add(num)
            wid = f"{num}@c.us"
            c = contacts.get(wid)
            if c is None:
                c = contacts[wid] = {"id": wid, "pushname": f"~{self.name(i)}", "isMyContact": False,
                                     "isBusiness": i % 9 == 4, "verifiedName": f"{self.name(i)} Ltd" if i % 9 == 4
                                     else None, "verifiedLevel": 2 if i % 9 == 4 else 0, "type": "out"}
            if saved:
                c.update({"name": self.name(i), "shortName": self.name(i).split(" ")[0], "isMyContact": True,
                          "type": "in"})
            return c

        def lid_person(i: int, known: bool) -> dict[str, Any]:
            lid = self.lid(i)
            c = {"id": lid, "pushname": f"~{self.name(i)}", "isMyContact": False, "type": "out"}
            if known:
                pn = person(i, saved=False)["id"]
                lid_pn[lid] = pn
                c["phoneNumber"] = pn
            else:
                lids_unknown.add(lid)
            contacts[lid] = c
            return c

        for i in range(b.contacts):  # the address book
            person(i, saved=True)

        n, g = b.chats, b.groups
        group_at = {j * n // g for j in range(g)} if g else set()  # spread over the list; distinct as g <= n
        span = b.days * 86400
        # Messages of a chat lie `gap` seconds apart, and every message stays inside the last `days` days.
        self.gap = max(1, min(37 if b.messages_per_chat < 200 else 7, (span // 2) // max(1, b.messages_per_chat - 1)))
        spread = span - self.gap * max(0, b.messages_per_chat - 1) - 120
        chats: list[dict[str, Any]] = []
        messages: dict[str, list[dict[str, Any]]] = {}
        groups: dict[str, dict[str, Any]] = {}
        one_to_one = 0
        for ci in range(n):
            chat_t = self.now - 60 - (ci * spread) // max(1, n)
            if ci in group_at:
                gid = f"1203630{self.seed % 1000:03d}{ci:07d}@g.us"
                parts = [person(ci + 1_000_000 + k, saved=k == 0)["id"] for k in range(3)]
                parts.append(lid_person(ci + 2_000_000, known=True)["id"])
                parts.append(lid_person(ci + 3_000_000, known=False)["id"])
                subject = f"Group {ci} {WORDS[ci % len(WORDS)]}"
                groups[gid] = {"id": gid, "subject": subject, "owner": f"{self.owner}@c.us",
                               "creation": chat_t - span, "announce": ci % 5 == 3, "restrict": False,
                               "participants": [{"id": f"{self.owner}@c.us", "isAdmin": True, "isSuperAdmin": True}]
                               + [{"id": p, "isAdmin": k == 0, "isSuperAdmin": False} for k, p in enumerate(parts)]}
                chat = {"id": gid, "name": subject}
                authors = parts
            else:
                if one_to_one < b.lid_contacts:
                    partner = lid_person(one_to_one, known=True)
                elif one_to_one < b.lid_contacts + b.lid_unknown:
                    partner = lid_person(one_to_one, known=False)
                else:
                    partner = person(one_to_one, saved=one_to_one < b.contacts)
                one_to_one += 1
                chat = {"id": partner["id"], "name": partner.get("name")}
                authors = [partner["id"]]
            msgs = self.messages(ci, chat["id"], authors, chat_t)
            unread = 0
            if ci % 4 == 0:
                for m in reversed(msgs):
                    if m["fromMe"]:
                        break
                    unread += 1
            chat.update({"t": msgs[-1]["t"] if msgs else chat_t, "unreadCount": unread,
                         "archive": ci % 50 == 49, "pin": chat_t if ci in (1, 2) else 0,
                         "muteExpiration": -1 if ci % 10 == 9 else 0, "isReadOnly": False})
            chats.append(chat)
            messages[chat["id"]] = msgs
        return History(owner=self.owner, version=self.version, chats=chats, messages=messages,
                       contacts=list(contacts.values()), groups=groups, lid_pn=lid_pn, lids_unknown=lids_unknown,
                       numbers=numbers, media=self.media)

    def messages(self, ci: int, chat_id: str, authors: list[str], chat_t: int) -> list[dict[str, Any]]:
        m_count = self.body.messages_per_chat
        gap = self.gap
        group = chat_id.endswith("@g.us")
        out = []
        me = f"{self.owner}@c.us"
        for k in range(m_count):
            t = chat_t - (m_count - 1 - k) * gap
            from_me = k % 3 == 1
            author = None if from_me or not group else authors[k % len(authors)]
            mid = ("3EB0" + _hex("m", self.seed, ci, k, n=16)) if from_me else ("3A" + _hex("m", self.seed, ci, k))
            msg: dict[str, Any] = {"id": mid, "fromMe": from_me, "from": me if from_me else chat_id,
                                   "to": chat_id if from_me else me, "author": author, "t": t, "type": "chat",
                                   "body": self.text(ci, k), "ack": 3 if from_me else None}
            if (ci + k) % 11 == 5:
                msg.update(type="image", body="", attrs={**self.image_attrs, "caption": f"photo {ci}.{k}"})
            elif (ci + k) % 17 == 7:
                msg.update(type="location", body="", attrs={"lat": 52.52 + ci / 1000, "lng": 13.405,
                                                            "loc": f"Place {ci}", "isLive": False})
            out.append(msg)
        return out


def build_history(owner: str, body: HistoryBody, now: float) -> History:
    return _Builder(owner, body, now).build()
