"""The phone side of conversations: seeded history, registered numbers, read receipts and chat states.

Pages reach it over their WebSocket (frame types in `frame_handlers`), the way the real page asks the
phone and the WhatsApp servers: `load_earlier` (older messages of a chat, loadEarlierMsgs), `query_exists`
(queryWidExists), `profile_pic` (requestProfilePicFromServer), `seen` (sendSeen's read receipts) and
`chatstate` (WAWebChatStateBridge). Tests and benches reach it over the phone API (`routes`).

Invariants: a history reaches a page before that page hears `paired`/`connected` (so before `hasSynced`),
once per history version a page holds; a read receipt goes only to phones whose messages were read; a lid
whose phone the page does not know is never resolved to a number here either.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wa_ray.simulator.wa_web.history import History, HistoryBody, png, build_history
from wa_ray.simulator.wa_web.state import Device, PageConn, SimState, lid_for, validate_number

CHAT_STATES = frozenset({"composing", "recording", "paused"})
LOG_MAX = 5000  # entries kept per phone log (reads, chatstates)


class RegisteredBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[str] = Field(max_length=100_000)


class Conversations:
    """Histories per phone and what linked pages did in chats, over the simulator's world."""

    def __init__(self, sim: SimState) -> None:
        self._sim = sim
        self.histories: dict[str, History] = {}
        self.registered: set[str] = set()

    @property
    def sim(self) -> SimState:
        return self._sim

    def install(self) -> None:
        self._sim.attach_hooks.append(self.on_attach)
        self._sim.frame_handlers.update({
            "load_earlier": self._load_earlier, "query_exists": self._query_exists,
            "profile_pic": self._profile_pic, "seen": self._seen, "chatstate": self._chatstate,
        })

    # ------------------------------------------------------------- history
    def seed(self, number: str, body: HistoryBody) -> History:
        phone = self._sim.phone(number)
        history = build_history(phone.number, body, time.time())
        self.histories[phone.number] = history
        return history

    async def on_attach(self, page: PageConn, device: Device) -> None:
        history = self.histories.get(device.number)
        if history is None or page.history_version == history.version:
            return
        try:
            for frame in history.sync_frames():
                await page.send(frame)
        except Exception:  # noqa: BLE001 - the page went away mid-transfer; its next hello asks again
            return
        page.history_version = history.version

    def media(self, token: str) -> bytes | None:
        for history in self.histories.values():
            data = history.media.get(token)
            if data is not None:
                return data
        return None

    # ------------------------------------------------------------ registry
    def _lid_to_pn(self, lid: str) -> str | None:
        """The phone behind a lid as the server knows it: a seeded one only where the history gives it, a
        live phone's own lid (phone sends `as_lid`) always, whatever its page was told."""
        for history in self.histories.values():
            if lid in history.lid_pn:
                return history.lid_pn[lid]
        number = self._sim.number_of_lid(lid)
        return f"{number}@c.us" if number else None

    def _lid_known(self, lid: str) -> bool:
        return any(lid in h.lid_pn or lid in h.lids_unknown for h in self.histories.values())

    def is_registered(self, number: str) -> bool:
        return (number in self._sim.phones or number in self.registered
                or any(number in h.numbers for h in self.histories.values()))

    def lid_of(self, number: str) -> str:
        pn = f"{number}@c.us"
        for history in self.histories.values():
            for lid, known in history.lid_pn.items():
                if known == pn:
                    return lid
        return lid_for(number)

    def exists(self, wid: str) -> dict[str, Any]:
        """What queryWidExists learns from the server: the wid (and its lid) if registered, else nothing."""
        if wid.endswith("@lid"):
            return {"wid": wid, "lid": wid} if self._lid_known(wid) else {"wid": None}
        user = wid.split("@", 1)[0]
        if not wid.endswith("@c.us") or not user.isdigit() or not self.is_registered(user):
            return {"wid": None}
        return {"wid": f"{user}@c.us", "lid": self.lid_of(user)}

    # --------------------------------------------------------- page frames
    async def _reply(self, page: PageConn, data: dict[str, Any], **fields: Any) -> None:
        try:
            await page.send({"type": "reply", "req": data.get("req"), **fields})
        except Exception:  # noqa: BLE001 - the page went away; nothing to answer
            return

    def _device(self, page: PageConn) -> Device | None:
        device = self._sim.devices.get(page.device_id or "")
        return device if device is not None and page.active else None

    async def _load_earlier(self, page: PageConn, data: dict[str, Any]) -> None:
        device = self._device(page)
        history = self.histories.get(device.number) if device else None
        if history is None:
            await self._reply(page, data, msgs=[], more=False)
            return
        msgs, more = history.earlier(str(data.get("chat", "")), str(data.get("before", "")))
        await self._reply(page, data, msgs=msgs, more=more)

    async def _query_exists(self, page: PageConn, data: dict[str, Any]) -> None:
        if self._device(page) is None:
            await self._reply(page, data, error="not_connected")
            return
        await self._reply(page, data, **self.exists(str(data.get("wid", ""))))

    async def _profile_pic(self, page: PageConn, data: dict[str, Any]) -> None:
        wid = str(data.get("wid", ""))
        known = wid.endswith("@g.us") and any(wid in h.groups for h in self.histories.values())
        if self._device(page) is None or not (known or self.exists(wid).get("wid")):
            await self._reply(page, data, eurl=None)
            return
        await self._reply(page, data, eurl=f"/_sim/pp/{wid}.png")

    def _phone_of(self, owner: str, wid: str | None) -> str | None:
        """The phone number behind a chat or author wid (a lid only where the phone is known)."""
        if not wid:
            return None
        if wid.endswith("@lid"):
            wid = self._lid_to_pn(wid)
        if wid and wid.endswith("@c.us"):
            user = wid.split("@", 1)[0]
            return user if user.isdigit() and user != owner else None
        return None

    @staticmethod
    def _log(entries: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        entries.append(entry)
        if len(entries) > LOG_MAX:
            del entries[: len(entries) - LOG_MAX]

    async def _seen(self, page: PageConn, data: dict[str, Any]) -> None:
        """Read receipts: each phone whose unread messages the page just read gets them (by chat)."""
        device = self._device(page)
        chat = str(data.get("chat", ""))
        if device is None or not chat:
            return
        by_phone: dict[str, list[str]] = {}
        for item in data.get("ids") or []:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            sender = item.get("author") if chat.endswith("@g.us") else chat
            number = self._phone_of(device.number, sender)
            if number:
                by_phone.setdefault(number, []).append(str(item["id"]))
        now = time.time()
        for number, ids in by_phone.items():
            self._log(self._sim.phone(number).reads, {"chat": chat, "ids": ids, "ts": now, "by": device.number})

    async def _chatstate(self, page: PageConn, data: dict[str, Any]) -> None:
        device = self._device(page)
        state = data.get("state")
        chat = str(data.get("chat", ""))
        if device is None or state not in CHAT_STATES or not chat:
            return
        entry = {"chat": chat, "state": state, "ts": time.time(), "from": device.number}
        self._log(self._sim.phone(device.number).chatstates, entry)
        partner = None if chat.endswith("@g.us") else self._phone_of(device.number, chat)
        if partner:
            self._log(self._sim.phone(partner).chatstates, entry)


# ------------------------------------------------------------------ routes
def conv_of(request: Request) -> Conversations:
    return request.app.state.conversations


def routes(api: Any, parse: Any) -> list[Route]:
    """Phone API routes of this module; `api`/`parse` are the server's error wrapper and body parser."""

    @api
    async def history(request: Request) -> Response:
        body = await parse(request, HistoryBody)
        h = conv_of(request).seed(request.path_params["number"], body)
        return JSONResponse({"chats": [c["id"] for c in h.chats], "contacts": len(h.contacts),
                             "version": h.version})

    @api
    async def reads(request: Request) -> Response:
        phone = conv_of(request).sim.phone(request.path_params["number"])
        return JSONResponse({"reads": phone.reads})

    @api
    async def chatstates(request: Request) -> Response:
        phone = conv_of(request).sim.phone(request.path_params["number"])
        return JSONResponse({"states": phone.chatstates})

    @api
    async def registered(request: Request) -> Response:
        conv = conv_of(request)
        if request.method == "PUT":
            body = await parse(request, RegisteredBody)
            conv.registered = {validate_number(n) for n in body.numbers}
        return JSONResponse({"numbers": sorted(conv.registered)})

    async def picture(request: Request) -> Response:
        wid = request.path_params["wid"]
        return Response(png(zlib.crc32(wid.encode())), media_type="image/png")

    p = "/_phone/{number}"
    return [
        Route(f"{p}/history", history, methods=["POST"]),
        Route(f"{p}/reads", reads, methods=["GET"]),
        Route(f"{p}/chatstates", chatstates, methods=["GET"]),
        Route("/_sim/registered", registered, methods=["GET", "PUT"]),
        Route("/_sim/pp/{wid}.png", picture, methods=["GET"]),
    ]
