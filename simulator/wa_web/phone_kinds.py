"""What a phone sends to a linked session besides text: media, location, contact cards, replies, reactions,
revokes and edits, in the shape WhatsApp's page holds them.

Every one of them reaches the page as a `msg` frame, as on the real protocol (a reaction, a revoke and an edit
are messages too: reactionMessage / protocolMessage), so a device that is offline gets them in order when it
comes back. The page-side models (static/inbound.js) turn each frame into what whatsapp-web.js 1.34.7 reads:
a Msg with the kind's attributes, a `reactionTableMode.bulkUpsert`, a `change:type` to 'revoked', a
`change:body` with `latestEditMsgKey`.

Media is encrypted as WhatsApp encrypts it (media_crypto) and served at its `directPath`; only the page,
holding the message's mediaKey, can read it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wa_ray.simulator.wa_web import media_crypto
from wa_ray.simulator.wa_web.state import InboxEntry, SimError, SimState, group_wid, new_msg_id, validate_number

# The WhatsApp message type of each media kind a phone can send.
MEDIA_TYPES = {"image": "image", "video": "video", "audio": "audio", "voice": "ptt", "document": "document",
               "sticker": "sticker"}
CAPTIONED = frozenset({"image", "video", "document"})
MEDIA_MAX_BYTES = 64 * 1024 * 1024
MEDIA_KEEP = 256  # encrypted files kept for download, oldest dropped first
DIRECT_PREFIX = "/v/t62.7118-24/"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str  # the linked number that receives it
    group_id: str | None = None  # sent in this group (to's copy of it), else the chat between the two


class KindBody(_Body):
    """One message of any kind but text (text stays POST /messages). `quoted_id` makes it a reply."""

    kind: Literal["image", "video", "audio", "voice", "document", "sticker", "location", "contacts"]
    data_b64: str | None = Field(default=None, max_length=MEDIA_MAX_BYTES * 4 // 3 + 4)
    mimetype: str | None = Field(default=None, max_length=200)
    filename: str | None = Field(default=None, max_length=255)
    caption: str | None = Field(default=None, max_length=4096)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    name: str | None = Field(default=None, max_length=1000)
    address: str | None = Field(default=None, max_length=1000)
    vcards: list[str] | None = Field(default=None, min_length=1, max_length=50)
    quoted_id: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _complete(self) -> KindBody:
        if self.kind in MEDIA_TYPES and (self.data_b64 is None or not self.mimetype):
            raise ValueError("media kinds need data_b64 and mimetype")
        if self.kind == "location" and (self.latitude is None or self.longitude is None):
            raise ValueError("location needs latitude and longitude")
        if self.kind == "contacts" and not self.vcards:
            raise ValueError("contacts needs vcards")
        if self.caption is not None and self.kind not in CAPTIONED:
            raise ValueError("only image, video and document carry a caption")
        return self


class ReactionBody(_Body):
    target_id: str = Field(min_length=1, max_length=128)
    emoji: str = Field(max_length=32)  # "" removes the reaction


class RevokeBody(_Body):
    target_id: str = Field(min_length=1, max_length=128)


class EditBody(_Body):
    target_id: str = Field(min_length=1, max_length=128)
    body: str = Field(min_length=1, max_length=4096)


def vcard_name(vcard: str) -> str:
    """The FN of a vCard (what WhatsApp shows as the card's name)."""
    for line in vcard.splitlines():
        if line.upper().startswith("FN:") or line.upper().startswith("FN;"):
            return line.split(":", 1)[1].strip()
    return ""


class PhoneKinds:
    """The phone's side of the non-text kinds, over the simulator's world (SimState)."""

    def __init__(self, sim: SimState) -> None:
        self._sim = sim
        self._media: OrderedDict[str, bytes] = OrderedDict()

    def media(self, token: str) -> bytes | None:
        return self._media.get(token)

    def _envelope(self, sender: str, rnum: str, gwid: str | None, msg_id: str, wa_type: str,
                  body: str) -> dict[str, Any]:
        phone = self._sim.phone(sender)
        return {"id": msg_id, "from": gwid or f"{sender}@c.us", "to": f"{rnum}@c.us",
                "author": f"{sender}@c.us" if gwid else None, "body": body, "t": int(time.time()), "type": wa_type,
                "notifyName": phone.config.pushname or f"Phone {sender}"}

    def _record(self, sender: str, rnum: str, gwid: str | None, msg_id: str, wa_type: str, body: str) -> None:
        now = time.time()
        self._sim.phone(rnum).inbox.append(
            InboxEntry(id=msg_id, from_=sender, to=rnum, body=body, ts=now, type=wa_type, group_id=gwid))
        if gwid:
            self._sim.groups.setdefault(gwid, []).append(
                InboxEntry(id=msg_id, from_=sender, to=gwid, body=body, ts=now, type=wa_type, group_id=gwid))

    def _store_media(self, plain: bytes, wa_type: str) -> dict[str, Any]:
        enc = media_crypto.encrypt(plain, wa_type)
        token = f"{new_msg_id('M')}.enc"
        self._media[token] = enc.enc
        while len(self._media) > MEDIA_KEEP:
            self._media.popitem(last=False)
        return {"mediaKey": base64.b64encode(enc.media_key).decode(), "mediaKeyTimestamp": int(time.time()),
                "directPath": DIRECT_PREFIX + token, "filehash": enc.filehash, "encFilehash": enc.enc_filehash,
                "size": len(plain)}

    def _sent_by(self, sender: str, rnum: str, gwid: str | None, target_id: str) -> bool:
        """`sender` sent `target_id` to `rnum` or to the group (what it may revoke or edit)."""
        log = self._sim.groups.get(gwid, []) if gwid else self._sim.phone(rnum).inbox
        return any(e.id == target_id and e.from_ == sender for e in log)

    def _between(self, sender: str, rnum: str, gwid: str | None, target_id: str) -> bool:
        """`target_id` is a message of the chat (what anyone in it may react to or quote)."""
        if gwid:
            return any(e.id == target_id for e in self._sim.groups.get(gwid, []))
        return self._sent_by(sender, rnum, None, target_id) or self._sent_by(rnum, sender, None, target_id)

    def _parties(self, number: str, body: _Body) -> tuple[str, str, str | None]:
        return (self._sim.phone(number).number, validate_number(body.to, "to"),
                group_wid(body.group_id) if body.group_id else None)

    async def send(self, number: str, body: KindBody) -> str:
        sender, rnum, gwid = self._parties(number, body)
        if body.quoted_id and not self._between(sender, rnum, gwid, body.quoted_id):
            raise SimError(404, "target_unknown", "no such message in this chat", {"quoted_id": body.quoted_id})
        msg_id = new_msg_id()
        attrs: dict[str, Any] = {}
        text = ""
        if body.kind in MEDIA_TYPES:
            wa_type = MEDIA_TYPES[body.kind]
            try:
                plain = base64.b64decode(body.data_b64 or "", validate=True)
            except binascii.Error as exc:
                raise SimError(422, "invalid_body", "data_b64 is not base64", {}) from exc
            attrs = {**self._store_media(plain, wa_type), "mimetype": body.mimetype}
            if body.filename is not None:
                attrs["filename"] = body.filename
            if body.caption is not None:
                attrs["caption"] = text = body.caption
        elif body.kind == "location":
            wa_type = "location"
            loc = "\n".join(x for x in (body.name, body.address) if x)
            attrs = {"lat": body.latitude, "lng": body.longitude, "isLive": False}
            if loc:
                attrs["loc"] = loc
        else:
            cards = body.vcards or []
            if len(cards) == 1:
                wa_type, text = "vcard", cards[0]
                attrs = {"vcardFormattedName": vcard_name(cards[0])}
            else:
                wa_type = "multi_vcard"
                attrs = {"vcardList": [{"displayName": vcard_name(c), "vcard": c} for c in cards]}
        if body.quoted_id:
            attrs["quotedStanzaID"] = body.quoted_id
        msg = self._envelope(sender, rnum, gwid, msg_id, wa_type, text)
        msg["attrs"] = attrs
        self._record(sender, rnum, gwid, msg_id, wa_type, text)
        self._sim.deliver_later(rnum, msg)
        return msg_id

    async def react(self, number: str, body: ReactionBody) -> str:
        sender, rnum, gwid = self._parties(number, body)
        if not self._between(sender, rnum, gwid, body.target_id):
            raise SimError(404, "target_unknown", "no such message in this chat", {"target_id": body.target_id})
        msg_id = new_msg_id()
        msg = self._envelope(sender, rnum, gwid, msg_id, "reaction", "")
        msg["reaction"] = {"target_id": body.target_id, "text": body.emoji}
        self._record(sender, rnum, gwid, msg_id, "reaction", body.emoji)
        self._sim.deliver_later(rnum, msg)
        return msg_id

    async def _protocol(self, number: str, body: _Body, target_id: str, subtype: str, text: str) -> str:
        sender, rnum, gwid = self._parties(number, body)
        if not self._sent_by(sender, rnum, gwid, target_id):
            raise SimError(404, "target_unknown", "this phone sent no such message to that chat",
                           {"target_id": target_id})
        msg_id = new_msg_id()
        msg = self._envelope(sender, rnum, gwid, msg_id, "protocol", text)
        msg["protocol"] = {"subtype": subtype, "target_id": target_id}
        self._record(sender, rnum, gwid, msg_id, f"protocol:{subtype}", text)
        self._sim.deliver_later(rnum, msg)
        return msg_id

    async def revoke(self, number: str, body: RevokeBody) -> str:
        return await self._protocol(number, body, body.target_id, "revoke", "")

    async def edit(self, number: str, body: EditBody) -> str:
        return await self._protocol(number, body, body.target_id, "edit", body.body)


def kinds_of(request: Request) -> PhoneKinds:
    return request.app.state.phone_kinds


def routes(api: Any, parse: Any) -> list[Route]:
    """The phone API routes of this module; `api`/`parse` are the server's error wrapper and body parser."""

    def handler(model: type[_Body], action: str) -> Any:
        @api
        async def run(request: Request) -> Response:
            body = await parse(request, model)
            msg_id = await getattr(kinds_of(request), action)(request.path_params["number"], body)
            return JSONResponse({"id": msg_id})

        return run

    async def download(request: Request) -> Response:
        token = request.path_params["token"]
        # live media first, then a seeded history's pictures (conversations.py)
        data = kinds_of(request).media(token) or request.app.state.conversations.media(token)
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="application/octet-stream")

    p = "/_phone/{number}"
    return [
        Route(f"{p}/kinds", handler(KindBody, "send"), methods=["POST"]),
        Route(f"{p}/reactions", handler(ReactionBody, "react"), methods=["POST"]),
        Route(f"{p}/revoke", handler(RevokeBody, "revoke"), methods=["POST"]),
        Route(f"{p}/edit", handler(EditBody, "edit"), methods=["POST"]),
        Route(DIRECT_PREFIX + "{token}", download, methods=["GET"]),
    ]
