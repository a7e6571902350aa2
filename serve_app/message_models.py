"""Request and response models of the message pipeline's routes (messages, provider, pacing, webhooks).

Input models forbid unknown fields and NaN/Infinity, bound every number, and match ids with ASCII
classes only (`[0-9]`, never `\\d`: pydantic's and Python's `\\d` take any script's digits).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.message_event_models import MessageAckEvent
from wa_ray.serve_app.send_models import SendMessage  # noqa: F401  (the union of kinds; re-exported)
from wa_ray.storage.events import STREAM_ID_PATTERN
from wa_ray.storage.messages import content_of
from wa_ray.storage.outbox import TENANT_MAX_ATTEMPTS, TENANT_MAX_DELAY_S, TENANT_MIN_DELAY_S
from wa_ray.storage.pacing import FLOAT_LIMITS, INT_LIMITS, MAX_STEPS, STEP_GAP_LIMITS, STEP_RATE_LIMITS

STRICT_INPUT = ConfigDict(extra="forbid", allow_inf_nan=False)

Priority = Literal["urgent", "high", "normal", "bulk"]
Provider = Literal["webjs", "meta"]


_MESSAGE_ID = "msg_5f0c1a2b3c4d5e6f"  # new_id("msg"): msg_ and 16 hex digits


class MessageAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"message_id": _MESSAGE_ID, "status": "queued", "provider": "webjs"}]})
    message_id: str
    status: str
    provider: Provider


class MessageOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message_id": _MESSAGE_ID, "workspace_id": "acme", "session_id": "support-1", "to": "15551230001",
        "status": "delivered", "provider": "webjs", "priority": "normal", "created_at": 1765000000.123,
        "wa_message_id": "true_15551230001@c.us_3EB0F1A2B3C4D5E6F7A8", "reason": None, "error_code": None, "failover": False,
        "type": "text", "content": {"text": "Your order has shipped", "preview_url": False}, "error": None,
        "strict": False, "history": [{"status": "queued", "ts": 1765000000.123, "provider": "webjs"},
                                     {"status": "sent", "ts": 1765000001.402},
                                     {"status": "delivered", "ts": 1765000002.917}]}]})
    message_id: str
    workspace_id: str
    session_id: str | None
    to: str
    status: str
    provider: Provider
    priority: str
    created_at: float
    wa_message_id: str | None = None
    reason: str | None = Field(default=None, description="why it failed")
    error_code: int | None = None
    failover: bool = Field(default=False, description="it was retried on the other provider")
    type: str = Field(default="text", description="the message kind")
    content: dict[str, Any] = Field(default_factory=dict, description="the kind's content, as accepted")
    error: str | None = Field(default=None, description="the stable failure code (media_too_large, ...)")
    strict: bool = Field(default=False, description="sent from its session or not at all (no failover)")
    history: list[dict[str, Any]]

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> MessageOut:
        code = r.get("error_code")
        kind, content = content_of(r)
        return cls(
            message_id=r["message_id"], workspace_id=r["workspace_id"], session_id=r.get("session_id") or None,
            to=r["to"], status=r["status"], provider=r.get("provider") or "webjs", priority=r["priority"],
            created_at=float(r["created_at"]), wa_message_id=r.get("wa_message_id") or None,
            reason=r.get("reason") or None, error_code=int(code) if code and str(code).lstrip("-").isdigit() else None,
            failover=r.get("failover") == "1", type=kind, content=content, error=r.get("error") or None,
            strict=r.get("strict") == "1", history=r["history"],
        )


class FallbackTemplateIn(BaseModel):
    model_config = STRICT_INPUT
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=15, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$")
    body_parameter: Literal["text"] | None = Field(
        default=None, description="`text`: the message's text is the template's one body parameter; null: none")


class CloudApiIn(BaseModel):
    model_config = STRICT_INPUT
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    access_token: str = Field(min_length=1, max_length=1024, description="stored encrypted")
    app_secret: str = Field(min_length=1, max_length=256, description="checks X-Hub-Signature-256; stored encrypted")
    verify_token: str | None = Field(default=None, min_length=1, max_length=256,
                                     description="answered in the GET /webhooks/meta handshake; stored as a digest")
    graph_base_url: str | None = Field(
        default=None, min_length=1, max_length=2048,
        description="admin keys only (403 otherwise): where the Graph API is (the simulator, a proxy); absent: "
                    "Meta's. Checked by the egress guard (422 `egress_denied`)")
    graph_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    throughput_per_second: int | None = Field(default=80, ge=1, le=10_000, description="null: no limit")
    pair_burst: int | None = Field(default=45, ge=1, le=10_000, description="null: no pair-rate pacing")
    pair_refill_s: float = Field(default=6.0, gt=0, le=3600)
    max_throttle_retries: int = Field(default=8, ge=0, le=100)
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    confirm_s: float = Field(default=20.0, ge=0, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    fallback_template: FallbackTemplateIn | None = Field(
        default=None, description="a text message refused for the 24-hour window (131047) is sent once more as "
                                  "this template before it fails")


class ProviderIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"priority": "webjs", "failover_grace_s": 15.0,
         "cloud": {"phone_number_id": "106540352242922", "access_token": "EAAG-example-access-token-not-real",
                   "app_secret": "example-app-secret-not-real", "verify_token": "example-verify-token",
                   "fallback_template": {"name": "order_update", "language": "en_US", "body_parameter": "text"}}},
        {"priority": "meta", "override": None}]})
    priority: Provider = "webjs"
    override: Provider | None = Field(default=None, description="force one provider whatever its health")
    failover_grace_s: float = Field(default=15.0, ge=0, le=86_400,
                                    description="how long a reconnecting session keeps its queue before it "
                                                "moves to the Cloud API (a logged-out one hands it over at once)")
    cloud: CloudApiIn | None = None


class ProviderOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "priority": "webjs", "override": None, "failover_grace_s": 15.0,
        "cloud": {"phone_number_id": "106540352242922", "graph_base_url": None, "graph_version": "v21.0",
                  "options": {"throughput_per_second": 80, "pair_burst": 45, "pair_refill_s": 6.0,
                              "max_throttle_retries": 8, "breaker_failures": 5, "breaker_cooldown_s": 30.0,
                              "confirm_s": 20.0, "timeout_s": 10.0, "fallback_template": None},
                  "access_token": "***", "app_secret": "***"},
        "current": "webjs", "sessions": {"support-1": True, "sales-2": False}, "cloud_api_healthy": True,
        "breaker": {"state": "closed", "failures": "0"}}]})
    priority: Provider
    override: Provider | None
    failover_grace_s: float
    cloud: dict[str, Any] | None
    current: str | None = Field(description="what new messages take now")
    sessions: dict[str, bool]
    cloud_api_healthy: bool
    breaker: dict[str, Any]


def _float(name: str) -> Any:
    low, high = FLOAT_LIMITS[name]
    return Field(default=None, ge=low, le=high)


def _int(name: str) -> Any:
    low, high = INT_LIMITS[name]
    return Field(default=None, ge=low, le=high)


StepRate = Annotated[int, Field(ge=STEP_RATE_LIMITS[0], le=STEP_RATE_LIMITS[1])]
StepGap = Annotated[float, Field(ge=STEP_GAP_LIMITS[0], le=STEP_GAP_LIMITS[1])]


class PacingIn(BaseModel):
    """The bounds are storage/pacing.py's, which also drops a stored value outside them on read."""

    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"per_minute": 20, "per_hour": 600}, {"steps": [[5, 2.0], [15, 5.0]], "above_s": 12.0, "typing": False}]})
    enabled: bool | None = None
    steps: list[tuple[StepRate, StepGap]] | None = Field(
        default=None, max_length=MAX_STEPS,
        description="[[up to N sends/min, gap s], ...]; above the last step `above_s`")
    above_s: float | None = _float("above_s")
    per_minute: int | None = _int("per_minute")
    per_hour: int | None = _int("per_hour")
    typing: bool | None = None
    typing_per_char_s: float | None = _float("typing_per_char_s")
    typing_min_s: float | None = _float("typing_min_s")
    typing_max_s: float | None = _float("typing_max_s")
    typing_jitter: float | None = _float("typing_jitter")


class WebhookPolicyIn(BaseModel):
    """Bounded (storage/outbox.py TENANT_*): at most 20 attempts, at least 0.1 s between them."""

    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"max_attempts": 10, "base_delay_s": 2.0, "max_delay_s": 600.0}]})
    max_attempts: int | None = Field(default=None, ge=1, le=TENANT_MAX_ATTEMPTS)
    base_delay_s: float | None = Field(default=None, ge=TENANT_MIN_DELAY_S, le=3600)
    max_delay_s: float | None = Field(default=None, ge=TENANT_MIN_DELAY_S, le=TENANT_MAX_DELAY_S)


class ReplayIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"event_ids": ["1765000000123-0", "1765000004567-0"]}, {}]})
    event_ids: list[Annotated[str, Field(pattern=STREAM_ID_PATTERN)]] | None = Field(default=None, max_length=10_000,
                                        description="replay only these; all dead letters when absent")


class ReplayOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"replayed": 2}]})
    replayed: int


class DeadLetter(BaseModel):
    event: dict[str, Any]
    reason: str = Field(description="our code: `permanent|max_attempts: http_4xx|timeout|connect_error|"
                                    "egress_denied (...)`")
    attempts: int
    status_class: str | None = Field(default=None, description="`2xx`..`5xx` of the last answer; never its "
                                                               "exact code or body")
    ts: float


class DeadLetters(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"total": 1, "items": [{
        "event": MessageAckEvent.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
        "reason": "max_attempts: http_5xx", "attempts": 8, "status_class": "5xx", "ts": 1765000420.5}]}]})
    total: int
    items: list[DeadLetter]
