"""How Meta would bill a message, for the `conversation`/`pricing` webhook fields.

Per-message pricing (PMP, since July 2025): free-form replies inside the
customer-service window are free (`service`, `free_customer_service`), and so
are utility templates sent inside an open window; other templates are billed
(`regular`) under their category.
"""

from __future__ import annotations

from wa_ray.simulator.cloud_api.ids import new_conversation_id
from wa_ray.simulator.cloud_api.payloads import Billing
from wa_ray.simulator.cloud_api.window import Clock, ServiceWindows

CONVERSATION_SECONDS = 24 * 3600


class Biller:
    def __init__(self, clock: Clock, windows: ServiceWindows):
        self._clock = clock
        self._windows = windows
        self._conversations: dict[tuple[str, str, str], tuple[str, float]] = {}

    def bill(
        self, phone_number_id: str, wa_id: str, *, is_template: bool, template_category: str, window_seconds: float
    ) -> Billing:
        in_window = self._windows.is_open(phone_number_id, wa_id, window_seconds)
        if not is_template:
            category, billable, kind = "service", False, "free_customer_service"
        elif in_window and template_category == "utility":
            category, billable, kind = "utility", False, "free_customer_service"
        else:
            category, billable, kind = template_category, True, "regular"
        conversation_id, expires_at = self._conversation(phone_number_id, wa_id, category, window_seconds, in_window)
        return Billing(category, billable, kind, conversation_id, expires_at)

    def _conversation(
        self, phone_number_id: str, wa_id: str, category: str, window_seconds: float, in_window: bool
    ) -> tuple[str, float]:
        now = self._clock.now()
        key = (phone_number_id, wa_id, category)
        current = self._conversations.get(key)
        if current is not None and current[1] > now:
            return current
        expires_at = now + CONVERSATION_SECONDS
        if in_window:
            window_end = self._windows.expires_at(phone_number_id, wa_id, window_seconds)
            expires_at = window_end if window_end is not None else expires_at
        current = (new_conversation_id(), expires_at)
        self._conversations[key] = current
        return current
