"""The event envelope shared by SSE and webhooks."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

SESSION_STATUS = "session.status"
SESSION_QR = "session.qr"
SESSION_READY = "session.ready"
SESSION_PAIRING_CODE = "session.pairing_code"  # the code to enter on the phone (login "code"), renewed while unlinked
SESSION_DISCONNECTED = "session.disconnected"
MESSAGE_RECEIVED = "message.received"
MESSAGE_QUEUED = "message.queued"
MESSAGE_SENT = "message.sent"
MESSAGE_ACK = "message.ack"
MESSAGE_FAILED = "message.failed"
MESSAGE_REACTION = "message.reaction"  # someone reacted to a message (emoji "" = reaction removed)
MESSAGE_REVOKED = "message.revoked"  # the sender deleted a message for everyone
MESSAGE_EDITED = "message.edited"  # the sender edited a message's text
PROVIDER_CHANGED = "provider.changed"
SESSION_PAUSED = "session.paused"  # its sender holds sends: hourly cap, daily new-contacts cap or ban risk
SESSION_RESUMED = "session.resumed"
SESSION_BAN_RISK = "session.ban_risk"  # a number's ban-risk score crossed a warning threshold upwards
SESSION_SYNC = "session.sync"  # a history sync's progress: phase, done, total (actors/session_sync.py)
CHATS_SYNCED = "chats.synced"  # a batch of a sync's chats (<= 100), newest first
CONTACTS_SYNCED = "contacts.synced"  # a batch of a sync's contacts (<= 200)
MESSAGES_SYNCED = "messages.synced"  # a batch of one chat's synced messages (<= 100), oldest first
CAMPAIGN_PROGRESS = "campaign.progress"  # a campaign's totals and ETA (actors/campaign_runner.py)

EVENT_TYPES = frozenset(
    {
        SESSION_STATUS,
        SESSION_QR,
        SESSION_READY,
        SESSION_PAIRING_CODE,
        SESSION_DISCONNECTED,
        MESSAGE_RECEIVED,
        MESSAGE_QUEUED,
        MESSAGE_SENT,
        MESSAGE_ACK,
        MESSAGE_FAILED,
        MESSAGE_REACTION,
        MESSAGE_REVOKED,
        MESSAGE_EDITED,
        PROVIDER_CHANGED,
        SESSION_PAUSED,
        SESSION_RESUMED,
        SESSION_BAN_RISK,
        SESSION_SYNC,
        CHATS_SYNCED,
        CONTACTS_SYNCED,
        MESSAGES_SYNCED,
        CAMPAIGN_PROGRESS,
    }
)


@dataclass
class Event:
    """`id` is the Redis stream id, known only once the event is stored."""

    type: str
    workspace_id: str
    session_id: str | None
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
