"""What the bench observed per message, from the SSE stream and the webhook receiver.

Keyed by message_id, filled in whatever order things arrive: a `message.sent`
on SSE can overtake the 202 of its own POST, and a webhook can overtake SSE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wa_ray.bench.webhooks import WebhookHit

SESSION_TYPES = frozenset({"session.qr", "session.ready", "session.status", "session.disconnected"})
SSE_TYPES = ("message.sent", "message.ack", "message.failed", *sorted(SESSION_TYPES))


@dataclass
class MessageTimes:
    sent_at: float | None = None  # SSE arrival in the bench
    sent_ts: float | None = None  # the event's own ts (stamped by the service when it was published)
    ack_at: float | None = None  # first message.ack (normally `delivered`)
    ack_ts: float | None = None
    ack_status: str | None = None
    ack_event_id: str | None = None
    failed_reason: str | None = None
    sse_sent_events: int = 0
    sse_ack_events: int = 0


@dataclass
class Timeline:
    messages: dict[str, MessageTimes] = field(default_factory=dict)
    session_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    webhook_first: dict[str, WebhookHit] = field(default_factory=dict)  # event id -> first delivery
    webhook_acks: dict[str, list[WebhookHit]] = field(default_factory=dict)  # message id -> ack deliveries
    webhook_deliveries: int = 0
    webhook_repeats: int = 0  # same X-Event-Id delivered again (at-least-once retries)
    webhook_bad_signatures: int = 0
    sse_events: int = 0
    last_sse_id: str | None = None
    arrived_at: dict[str, float] = field(default_factory=dict)  # session event id -> wall clock on arrival

    def times(self, message_id: str) -> MessageTimes:
        t = self.messages.get(message_id)
        if t is None:
            t = self.messages[message_id] = MessageTimes()
        return t

    def on_sse(self, event: dict[str, Any], at: float) -> None:
        self.sse_events += 1
        self.last_sse_id = event.get("id") or self.last_sse_id
        type_ = event.get("type", "")
        if type_ in SESSION_TYPES:
            self.session_events.setdefault(event.get("session_id") or "", []).append(event)
            if event.get("id"):
                self.arrived_at[event["id"]] = at
            return
        data = event.get("data") or {}
        message_id = data.get("message_id")
        if not message_id:
            return
        t = self.times(message_id)
        if type_ == "message.sent":
            t.sse_sent_events += 1
            if t.sent_at is None:
                t.sent_at, t.sent_ts = at, event.get("ts")
        elif type_ == "message.ack":
            t.sse_ack_events += 1
            if t.ack_at is None:
                t.ack_at, t.ack_ts = at, event.get("ts")
                t.ack_status, t.ack_event_id = data.get("status"), event.get("id")
        elif type_ == "message.failed":
            t.failed_reason = str(data.get("reason"))

    def on_webhook(self, hit: WebhookHit) -> None:
        self.webhook_deliveries += 1
        if not hit.signature_ok:
            self.webhook_bad_signatures += 1
            return
        if hit.event_id in self.webhook_first:
            self.webhook_repeats += 1
            return
        self.webhook_first[hit.event_id] = hit
        if hit.event_type == "message.ack" and hit.message_id:
            self.webhook_acks.setdefault(hit.message_id, []).append(hit)

    def webhook_ack_at(self, message_id: str) -> float | None:
        """Arrival of the webhook that carries the same ack event the SSE stream showed first."""
        t = self.messages.get(message_id)
        if t is not None and t.ack_event_id and t.ack_event_id in self.webhook_first:
            return self.webhook_first[t.ack_event_id].at
        hits = self.webhook_acks.get(message_id)
        return min(h.at for h in hits) if hits else None
