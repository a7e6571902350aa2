"""The log of messages the simulator accepted (answered with a `wamid`).

This is the ground truth for exactly-once assertions: a message appears here
once per accepted `POST .../messages`, whatever our own code believes it did.
Rejected requests (any synchronous error) never appear. Messages that were
accepted and then failed asynchronously appear with `failed_code` set.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SentMessage:
    id: str
    phone_number_id: str
    to: str
    wa_id: str
    type: str
    text: str | None
    template: str | None
    biz_opaque_callback_data: str | None
    accepted_at: float
    request: dict[str, Any]
    statuses: list[str] = field(default_factory=list)
    failed_code: int | None = None
    # what a test compares with what it sent: the type and its checked content (simulator/cloud_api/kinds.py)
    kind: str = "text"
    content: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SentLog:
    def __init__(self) -> None:
        # Read from test threads while the server thread appends.
        self._lock = threading.Lock()
        self._items: list[SentMessage] = []
        self._by_id: dict[str, SentMessage] = {}

    def add(self, message: SentMessage) -> None:
        with self._lock:
            self._items.append(message)
            self._by_id[message.id] = message

    def get(self, wamid: str) -> SentMessage | None:
        with self._lock:
            return self._by_id.get(wamid)

    def record_status(self, wamid: str, status: str) -> None:
        with self._lock:
            message = self._by_id.get(wamid)
            if message is not None:
                message.statuses.append(status)

    def items(self, to: str | None = None, phone_number_id: str | None = None) -> list[SentMessage]:
        with self._lock:
            return [
                m for m in self._items
                if (to is None or m.wa_id == to or m.to == to)
                and (phone_number_id is None or m.phone_number_id == phone_number_id)
            ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_id.clear()
