"""A hosted session's conversation calls, run in its BrowserHost against its page (BrowserHost.conversation).

The ingress asks by op name with plain params (serve_app/session_pages.py); the answer is plain data
that crosses Ray: the bridge's chats, contacts and participants as they are, and every page message
typed as the `message.received` payload plus `from_me` (actors/history_messages.history_payload), so a
listed message and a received one are one shape. A message the normalizer cannot name is left out.

Outcomes are data, not exceptions across Ray: `{"error": "chat_not_found" | "cursor_unknown" |
"contact_not_found" | "page_gone" | "bad_op"}` for the ingress to map to its HTTP errors.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import redis.asyncio as aioredis

from wa_ray.actors.history_messages import history_payload
from wa_ray.config import RuntimeConfig
from wa_ray.sessions.conversations import ChatNotFound, ContactNotFound, CursorUnknown, PageConversations
from wa_ray.sessions.page import PageGone, PageSession
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicyStore
from wa_ray.storage.messages import MessageStore

OPS = ("chats", "messages", "contacts", "contact", "exists", "read", "presence", "participants")


class ConversationCalls:
    """One per host: the stores the message typing needs, shared by every hosted session."""

    def __init__(self, redis: aioredis.Redis, config: RuntimeConfig) -> None:
        self._pending = PendingMediaStore(redis, config.media_retention_s)
        self._policies = MediaPolicyStore(redis)
        self._messages = MessageStore(redis)

    async def call(self, ws: str, sid: str, page: PageSession, op: str, params: dict[str, Any]) -> dict[str, Any]:
        conv = PageConversations(page)
        try:
            if op == "chats":
                return await self._chats(ws, sid, conv, params)
            if op == "messages":
                got = await conv.chat_messages(str(params["chat_id"]), before=params.get("before"),
                                               after=params.get("after"), limit=int(params.get("limit", 50)),
                                               since_ts=params.get("since_ts"))
                return {"items": await self._typed(ws, sid, got.items), "has_more": got.has_more}
            if op == "contacts":
                page_ = await conv.contacts(query=params.get("query"), cursor=params.get("cursor"),
                                            limit=int(params.get("limit", 50)))
                return {"items": page_.items, "next": page_.next}
            if op == "contact":
                return {"contact": await conv.contact(str(params["contact_id"]))}
            if op == "exists":
                exists, wid = await conv.number_exists(str(params["number"]))
                return {"exists": exists, "id": wid}
            if op == "read":
                await conv.mark_read(str(params["chat_id"]))
                return {"ok": True}
            if op == "presence":
                await conv.chat_state(str(params["chat_id"]), params["state"], require_chat=True)
                return {"ok": True}
            if op == "participants":
                return {"items": await conv.group_participants(str(params["group_id"]))}
        except ChatNotFound:
            return {"error": "chat_not_found"}
        except CursorUnknown:
            return {"error": "cursor_unknown"}
        except ContactNotFound:
            return {"error": "contact_not_found"}
        except PageGone:
            return {"error": "page_gone"}
        return {"error": "bad_op"}

    async def _chats(self, ws: str, sid: str, conv: PageConversations, params: dict[str, Any]) -> dict[str, Any]:
        cursor = params.get("cursor")
        got = await conv.chats(cursor=(int(cursor[0]), str(cursor[1])) if cursor else None,
                               limit=int(params.get("limit", 50)), archived=params.get("archived"),
                               groups=bool(params.get("groups")))
        lasts = await self._typed(ws, sid, [c.get("last_message") for c in got.items], keep_none=True)
        items = [{**chat, "last_message": last} for chat, last in zip(got.items, lasts, strict=True)]
        return {"items": items, "next": list(got.next) if got.next else None, "total": got.total}

    async def _typed(self, ws: str, sid: str, raws: list[Any], *, keep_none: bool = False) -> list[Any]:
        """Page reports as message payloads; one policy read for the lot."""
        if not any(isinstance(r, dict) for r in raws):
            return [None] * len(raws) if keep_none else []
        policy = await self._policies.get(ws)
        message_of = functools.partial(self._messages.by_wa_id, ws)

        async def one(raw: Any) -> dict[str, Any] | None:
            if not isinstance(raw, dict):
                return None
            return await history_payload(ws, sid, raw, self._pending, policy=policy, message_of=message_of)

        # together: a media's pending record and a quote's lookup are Redis round trips each
        typed = await asyncio.gather(*(one(raw) for raw in raws))
        return [p for p in typed if p is not None or keep_none]
