"""The 24-hour customer-service window, on a clock tests can move.

Meta lets a business send free-form (non-template) messages to a user only
within 24 h of that user's last inbound message; outside it only templates go
through (error 131047). The window is per business number and user.

The simulator's wall clock can be advanced through the control API so tests
can close a window without waiting a day; webhook timestamps use the same
clock so they stay consistent with the window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Clock:
    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class ServiceWindows:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._last_inbound: dict[tuple[str, str], float] = {}

    def open(self, phone_number_id: str, wa_id: str) -> None:
        self._last_inbound[(phone_number_id, wa_id)] = self._clock.now()

    def is_open(self, phone_number_id: str, wa_id: str, window_seconds: float) -> bool:
        opened = self._last_inbound.get((phone_number_id, wa_id))
        return opened is not None and self._clock.now() - opened < window_seconds

    def expires_at(self, phone_number_id: str, wa_id: str, window_seconds: float) -> float | None:
        opened = self._last_inbound.get((phone_number_id, wa_id))
        return None if opened is None else opened + window_seconds
