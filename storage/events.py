"""The per-workspace event stream: SSE reads it, webhooks deliver from it.

Stream ids double as event ids, so SSE resume (`Last-Event-ID`) and webhook
dedupe (`X-Event-Id`) share one key.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.events import Event

MAX_EVENTS_PER_WORKSPACE = 100_000
# Stream ids in ASCII digits only: a pattern's \d and int() take any script's digits, which Redis refuses.
STREAM_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
# A position to read after: a full id, or a bare millisecond time (read as ms-0).
STREAM_POSITION_PATTERN = r"^[0-9]{1,20}(-[0-9]{1,20})?$"


class EventLog:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, event: Event) -> str:
        event_id = await self._redis.xadd(
            keys.events(event.workspace_id), {"e": encode(event)}, maxlen=MAX_EVENTS_PER_WORKSPACE, approximate=True
        )
        event.id = event_id
        return event_id

    def publish_in(self, pipe: Any, event: Event) -> None:
        """Queue the XADD on a pipeline/transaction that the caller executes."""
        pipe.xadd(
            keys.events(event.workspace_id), {"e": encode(event)}, maxlen=MAX_EVENTS_PER_WORKSPACE, approximate=True
        )

    async def read_after(self, ws: str, last_id: str, block_ms: int, count: int = 200) -> list[dict[str, Any]]:
        return [decode_stored(entry_id, stored)
                for entry_id, stored in await self.read_stored_after(ws, last_id, block_ms, count)]

    async def read_stored_after(self, ws: str, last_id: str, block_ms: int, count: int = 200) -> list[tuple[str, str]]:
        """As `read_after`, but each entry as (id, stored form), not decoded: a reader that wants only some
        types decodes only those (`stored_type`)."""
        reply = await self._redis.xread({keys.events(ws): last_id}, count=count, block=block_ms)
        return [(entry_id, fields["e"]) for _, entries in reply for entry_id, fields in entries]

    async def last_id(self, ws: str) -> str:
        info = await self._redis.xrevrange(keys.events(ws), count=1)
        return info[0][0] if info else "0-0"


def encode(event: Event) -> str:
    """The stored form of an event (its id is the stream id, so it is not stored); Lua scripts XADD this."""
    return orjson.dumps(_without_id(event)).decode()


def decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return decode_stored(entry_id, fields["e"])


def decode_stored(entry_id: str, stored: str) -> dict[str, Any]:
    envelope = orjson.loads(stored)
    envelope["id"] = entry_id
    return envelope


_TYPE_PREFIX = '{"type":"'


def stored_type(stored: str) -> str | None:
    """An event's type read off its stored form without decoding it, when `encode` wrote it (the type first,
    compact, no escape in it); None when it cannot be told that way (decode it to know)."""
    if not stored.startswith(_TYPE_PREFIX):
        return None
    end = stored.find('"', len(_TYPE_PREFIX))
    found = stored[len(_TYPE_PREFIX):end]
    return found if end > 0 and "\\" not in found else None


def _without_id(event: Event) -> dict[str, Any]:
    # the fields of Event.to_dict() but `id`, built directly: dataclasses.asdict deep-copies `data`
    # recursively, which cost more than the rest of encoding on the POST /messages path
    return {"type": event.type, "workspace_id": event.workspace_id, "session_id": event.session_id,
            "data": event.data, "ts": event.ts}
