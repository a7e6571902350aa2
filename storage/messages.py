"""Durable message log and per-session priority queues (Redis Streams).

`accept` writes the message, its first history entry, the queue entry and the
`message.queued` event in one MULTI/EXEC, so a 202 always means all four exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from storage import keys
from storage.events import EventLog
from wa_ray.events import MESSAGE_QUEUED, Event

IDEMPOTENCY_TTL_S = 24 * 3600
WA_ID_TTL_S = 7 * 24 * 3600

TERMINAL = frozenset({"read", "failed"})
# A late `delivered` ack must not overwrite `read`: statuses only move forward.
_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    workspace_id: str
    session_id: str
    to: str
    text: str
    priority: str
    stream: str = ""
    entry_id: str = ""


class MessageStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._events = EventLog(redis)

    async def accept(self, msg: OutboundMessage, idempotency_key: str | None) -> tuple[str, bool]:
        """Returns (message_id, created). An idempotent repeat returns the first id."""
        if idempotency_key:
            claimed = await self._redis.set(
                keys.idempotency(msg.workspace_id, idempotency_key), msg.message_id, nx=True, ex=IDEMPOTENCY_TTL_S
            )
            if not claimed:
                existing = await self._redis.get(keys.idempotency(msg.workspace_id, idempotency_key))
                if existing:
                    return existing, False
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.message(msg.message_id),
                mapping={
                    "message_id": msg.message_id,
                    "workspace_id": msg.workspace_id,
                    "session_id": msg.session_id,
                    "to": msg.to,
                    "text": msg.text,
                    "priority": msg.priority,
                    "status": "queued",
                    "provider": "webjs",
                    "created_at": now,
                },
            )
            pipe.rpush(keys.message_history(msg.message_id), orjson.dumps({"status": "queued", "ts": now}).decode())
            pipe.xadd(keys.queue(msg.workspace_id, msg.session_id, msg.priority), {"m": msg.message_id})
            self._events.publish_in(
                pipe,
                Event(
                    type=MESSAGE_QUEUED,
                    workspace_id=msg.workspace_id,
                    session_id=msg.session_id,
                    data={"message_id": msg.message_id, "to": msg.to, "priority": msg.priority},
                    ts=now,
                ),
            )
            await pipe.execute()
        return msg.message_id, True

    async def get(self, message_id: str) -> dict[str, Any] | None:
        record = await self._redis.hgetall(keys.message(message_id))
        if not record:
            return None
        history = await self._redis.lrange(keys.message_history(message_id), 0, -1)
        record["history"] = [orjson.loads(h) for h in history]
        return record

    async def load(self, message_id: str) -> OutboundMessage | None:
        r = await self._redis.hgetall(keys.message(message_id))
        if not r:
            return None
        return OutboundMessage(r["message_id"], r["workspace_id"], r["session_id"], r["to"], r["text"], r["priority"])

    async def advance(self, message_id: str, status: str, **extra: Any) -> bool:
        """Move a message forward; returns False when it is already at or past `status`."""
        current = await self._redis.hget(keys.message(message_id), "status")
        if current is None or _RANK.get(current, -1) >= _RANK[status]:
            return False
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.message(message_id), mapping={"status": status, **{k: str(v) for k, v in extra.items()}})
            pipe.rpush(keys.message_history(message_id), orjson.dumps({"status": status, "ts": now, **extra}).decode())
            await pipe.execute()
        return True

    async def bind_wa_id(self, message_id: str, wa_id: str) -> None:
        await self._redis.set(keys.wa_message(wa_id), message_id, ex=WA_ID_TTL_S)

    async def by_wa_id(self, wa_id: str) -> str | None:
        return await self._redis.get(keys.wa_message(wa_id))

    async def ensure_queues(self, ws: str, sid: str) -> list[str]:
        streams = [keys.queue(ws, sid, p) for p in keys.PRIORITIES]
        for stream in streams:
            try:
                await self._redis.xgroup_create(stream, keys.QUEUE_GROUP, id="0", mkstream=True)
            except aioredis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        return streams
