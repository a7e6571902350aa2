"""Configuration of the Cloud API simulator.

Defaults mirror what Meta documents for a freshly registered Cloud API number,
so code tested against the defaults meets the same limits in production:

* throughput: 80 messages/s per business phone number (error 130429);
* pair rate: one message every 6 s to the same user, bursts of up to 45 that
  are "borrowed" from future quota (error 131056) - a token bucket;
* customer-service window: free-form (non-template) messages only within 24 h
  of the user's last inbound message (error 131047);
* webhooks: retried with exponential backoff when the callback does not
  answer 200 (Meta retries for up to 7 days; here the attempt count and base
  delay are bounded and configurable so tests stay fast).

Everything is a plain dataclass: the control API mutates the live copy, and
`/_control/reset` goes back to a deep copy of the config the app was built with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OutageMode = Literal["off", "error", "hang"]
FailureDelivery = Literal["response", "webhook"]


@dataclass
class PhoneNumber:
    """A registered business phone number and the token allowed to send from it."""

    phone_number_id: str
    access_token: str
    display_phone_number: str = "15550000000"
    waba_id: str = "100000000000000"


@dataclass
class StatusDelays:
    """Seconds after acceptance at which each status webhook is emitted.

    `None` means the status never happens (e.g. `read=None` is a user with read
    receipts off, who only ever reaches `delivered`).
    """

    sent: float | None = 0.05
    delivered: float | None = 0.2
    read: float | None = 0.5


@dataclass
class WebhookConfig:
    """Where and how status/inbound webhooks are delivered (one Meta app)."""

    callback_url: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None
    # Chaos switches: Meta only promises at-least-once and no ordering.
    duplicates: bool = False
    out_of_order: bool = False
    # Retry policy on a non-200 answer or a transport error. Meta keeps going
    # for days; a simulator must end, so attempts are bounded.
    max_attempts: int = 6
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    timeout: float = 10.0


@dataclass
class OutageConfig:
    """`error` answers every Graph call with `status`; `hang` holds the request
    open for `hang_seconds` (longer than any sane client timeout) and then
    answers 504, or answers as soon as the outage is switched off."""

    mode: OutageMode = "off"
    status: int = 503
    hang_seconds: float = 30.0


@dataclass
class CloudSimConfig:
    phone_numbers: list[PhoneNumber] = field(default_factory=list)
    # None disables a limit entirely (useful for load tests of our own code).
    throughput_per_second: int | None = 80
    pair_burst: int | None = 45
    pair_refill_seconds: float = 6.0
    enforce_service_window: bool = True
    service_window_seconds: float = 24 * 3600
    # Meta reports 131047 (window) and 131026 (undeliverable) synchronously
    # for some requests and asynchronously (200 + a `failed` status webhook)
    # for others. "response" answers with the Graph error; "webhook" accepts
    # the message and later sends `failed`. Client code must handle both.
    failure_delivery: FailureDelivery = "response"
    undeliverable: set[str] = field(default_factory=set)
    transient_failure_rate: float = 0.0
    outage: OutageConfig = field(default_factory=OutageConfig)
    status_delays: StatusDelays = field(default_factory=StatusDelays)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    # The category Meta bills a template under; the simulator knows no
    # template registry, so one category applies to all templates.
    template_category: str = "utility"
    seed: int | None = None
