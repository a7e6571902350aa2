"""Page -> Redis: inbound messages and delivery acks, straight to the event stream.

Kept off Ray RPC on purpose: acks and inbound messages are the hot path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from storage import keys
from storage.events import EventLog
from storage.messages import MessageStore
from wa_ray.events import MESSAGE_ACK, MESSAGE_RECEIVED, Event

ACK_STATUS = {2: "delivered", 3: "read", 4: "read"}  # 4 = played (voice): read for text purposes
SEEN_TTL_S = 7 * 24 * 3600


class InboundRecorder:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._events = EventLog(redis)
        self._messages = MessageStore(redis)

    async def message(self, ws: str, sid: str, msg: dict[str, Any]) -> None:
        # WhatsApp may redeliver on reconnect: one event per WhatsApp message id.
        first = await self._redis.set(f"{keys.PREFIX}:seen:{ws}:{msg['id']}", 1, nx=True, ex=SEEN_TTL_S)
        if not first:
            return
        data = {
            "wa_message_id": msg["id"],
            "from": _number(msg["from"]),
            "chat_id": msg["from"],
            "author": msg.get("author"),
            "to": _number(msg["to"]),
            "text": msg.get("body"),
            "type": msg.get("type"),
            "timestamp": msg.get("t"),
            "provider": "webjs",
        }
        await self._events.publish(Event(MESSAGE_RECEIVED, ws, sid, data))

    async def ack(self, ws: str, sid: str, wa_id: str, ack: int) -> None:
        status = ACK_STATUS.get(ack)
        if status is None:
            return
        message_id = await self._messages.by_wa_id(wa_id)
        if message_id is None:
            return
        await self._after_sent(message_id)
        if not await self._messages.advance(message_id, status):
            return
        data = {"message_id": message_id, "wa_message_id": wa_id, "status": status, "provider": "webjs"}
        await self._events.publish(Event(MESSAGE_ACK, ws, sid, data))

    async def _after_sent(self, message_id: str, timeout_s: float = 2.0) -> None:
        """An ack can overtake the sender recording `sent`; keep the history in order."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self._redis.hget(keys.message(message_id), "status") == "sending":
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.02)


def _number(wid: str) -> str:
    return wid.split("@", 1)[0]
