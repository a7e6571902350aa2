"""Redis -> page: one sender loop per session, pulling its priority queues.

The loop reads the four priority streams of its session with XREADGROUP and
sends in priority order. Before each send it records the WhatsApp message key
it is about to use; after a crash the same message is first looked up by that
key, so a message reclaimed from the pending list is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from sessions.page import PageSession
from storage import keys
from storage.events import EventLog
from storage.messages import MessageStore
from wa_ray.events import MESSAGE_FAILED, MESSAGE_SENT, Event

log = logging.getLogger(__name__)

BATCH = 20
BLOCK_MS = 1000


class SessionSender:
    def __init__(self, redis: aioredis.Redis, ws: str, sid: str, page: PageSession) -> None:
        self._redis = redis
        self._ws, self._sid = ws, sid
        self._page = page
        self._messages = MessageStore(redis)
        self._events = EventLog(redis)
        self._consumer = f"{ws}/{sid}"
        self._streams = [keys.queue(ws, sid, p) for p in keys.PRIORITIES]
        self.connected = asyncio.Event()

    async def run(self) -> None:
        await self._messages.ensure_queues(self._ws, self._sid)
        backlog = True  # our own pending entries first: they were read but never acked
        while True:
            await self.connected.wait()
            start = "0" if backlog else ">"
            reply = await self._redis.xreadgroup(
                keys.QUEUE_GROUP, self._consumer, {s: start for s in self._streams},
                count=BATCH, block=None if backlog else BLOCK_MS,
            )
            entries = [(stream, eid, fields) for stream, items in reply for eid, fields in items if fields]
            if backlog and not entries:
                backlog = False
                continue
            entries.sort(key=lambda e: self._streams.index(e[0]))
            for stream, entry_id, fields in entries:
                if not self.connected.is_set():
                    backlog = True  # left unacked: picked up again from the pending list
                    break
                await self._deliver(fields["m"])
                await self._redis.xack(stream, keys.QUEUE_GROUP, entry_id)

    async def _deliver(self, message_id: str) -> None:
        record = await self._redis.hgetall(keys.message(message_id))
        if not record or record.get("status") not in ("queued", "sending"):
            return  # already sent, or unknown: never send twice
        to = f"{record['to']}@c.us"
        try:
            key = record.get("wa_key")
            if key:
                serialized = f"true_{to}_{key}"
                if await self._page.already_sent(serialized):
                    await self._mark_sent(message_id, serialized, record)
                    return
            else:
                key = await self._page.new_key()
                await self._messages.advance(message_id, "sending", wa_key=key)
            # bound before the send: an ack can overtake the send's own reply
            await self._messages.bind_wa_id(message_id, f"true_{to}_{key}")
            started = time.time()
            result = await self._page.send(to, record["text"], key)
            await self._mark_sent(message_id, result["id"], record, send_ms=(time.time() - started) * 1000)
        except Exception as exc:  # page errors are per message; the loop keeps going
            log.warning("send %s failed: %s", message_id, exc)
            if await self._messages.advance(message_id, "failed", reason=str(exc)[:500]):
                await self._events.publish(
                    Event(MESSAGE_FAILED, self._ws, self._sid, {"message_id": message_id, "reason": str(exc)[:500]})
                )

    async def _mark_sent(self, message_id: str, wa_id: str, record: dict[str, str], send_ms: float = 0.0) -> None:
        await self._messages.bind_wa_id(message_id, wa_id)
        if await self._messages.advance(message_id, "sent", wa_message_id=wa_id):
            data = {"message_id": message_id, "wa_message_id": wa_id, "to": record["to"], "provider": "webjs",
                    "send_ms": round(send_ms, 2)}
            await self._events.publish(Event(MESSAGE_SENT, self._ws, self._sid, data))
