"""What happens to a message its provider could not send: one retry on the other provider, else failed.

Used by both senders and by the inbound side (a Web send rejected with ack -1,
a Cloud API `failed` status webhook). The health it checks comes straight from
Redis (storage/providers.py), so a failure costs no Ray call either.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.messages import META, WEBJS, MessageStore, may_move
from wa_ray.storage.providers import ProviderStore
from wa_ray.events import MESSAGE_FAILED, Event
from wa_ray.message_kinds import Kind, provider_sends

REROUTED, FAILED, UNCHANGED = "rerouted", "failed", "unchanged"


class FailoverRouter:
    def __init__(self, redis: aioredis.Redis, providers: ProviderStore, messages: MessageStore) -> None:
        self._redis = redis
        self._providers = providers
        self._messages = messages

    async def fail_or_failover(self, record: dict[str, str], reason: str, *, code: int | None = None,
                               error: str | None = None, allowed: tuple[str, ...] = ("queued", "sending"), failover: bool = True,
                               from_stream: str = "", entry_id: str = "") -> str:
        """Retry once on the other provider when it can take the message now; otherwise fail it with `reason`.

        `failover=False` is for outcomes that must not be sent again anywhere (a send that may have
        reached WhatsApp). The queue entry (`from_stream`, `entry_id`) is acked in the same step.
        `error` is our stable code (wa_ray/message_kinds.py FailureCode) when the failure has one; `code`
        is the provider's numeric one. A kind the other provider cannot send (a poll, a template) never
        moves, nor does a strict message or one to a group or a @lid on its way to the Cloud API
        (storage/messages.may_move): it fails here with the reason it failed for.
        """
        mid, ws = record["message_id"], record["workspace_id"]
        current = record.get("provider") or WEBJS
        other = META if current == WEBJS else WEBJS
        if (failover and record.get("failover", "0") == "0" and may_move(record, other)
                and provider_sends(other, Kind(record.get("kind") or "text"))):
            health = await self._providers.health(ws)
            session = health.best_session(record.get("session_id") or None) if other == WEBJS else None
            if (other == WEBJS and session) or (other == META and health.meta):
                moved = await self._messages.reroute(mid, record, other, session or record.get("session_id", ""),
                                                     reason, allowed=allowed, from_stream=from_stream,
                                                     entry_id=entry_id)
                if moved:
                    return REROUTED
        data: dict[str, Any] = {"message_id": mid, "reason": reason[:500], "provider": current, "code": code,
                                "error": error}
        if record.get("failover_reason"):
            data["first_error"] = record["failover_reason"]
        failed = await self._messages.transition(
            mid, ws, "failed", expect=allowed, fields={"reason": reason[:500], "error_code": code or "", "error": error or ""},
            note={"reason": reason[:500], "provider": current, "code": code, "error": error},
            event=Event(MESSAGE_FAILED, ws, record.get("session_id") or None, data),
        )
        if from_stream and entry_id:
            await self._redis.xack(from_stream, keys.QUEUE_GROUP, entry_id)
        return FAILED if failed else UNCHANGED
