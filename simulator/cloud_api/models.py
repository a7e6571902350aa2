"""Pydantic models at the HTTP edges: the Graph send request and control bodies.

The Graph models accept unknown fields (Meta adds fields all the time, and a
simulator that rejected them would punish correct clients); validation errors
are turned into Meta's `(#100) Invalid parameter` by `graph_api`. Control
models forbid unknown fields so a typo in a test fails loudly (422).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT_BODY = 4096
MAX_OPAQUE_CALLBACK_DATA = 512

# Message types the real endpoint accepts; the simulator checks only that the
# object named by `type` is present for the ones it does not model in depth.
KNOWN_TYPES = (
    "text", "template", "image", "audio", "video", "document", "sticker",
    "location", "contacts", "interactive", "reaction",
)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextObject(_Lenient):
    body: str
    preview_url: bool | None = None


class TemplateLanguage(_Lenient):
    code: str
    policy: str | None = None


class TemplateObject(_Lenient):
    name: str
    language: TemplateLanguage
    components: list[dict[str, Any]] | None = None


class SendMessageRequest(_Lenient):
    messaging_product: str
    to: str
    recipient_type: str = "individual"
    type: str = "text"  # Meta defaults `type` to text
    text: TextObject | None = None
    template: TemplateObject | None = None
    context: dict[str, Any] | None = None
    biz_opaque_callback_data: str | None = None


class MarkReadRequest(_Lenient):
    messaging_product: str
    status: Literal["read"]
    message_id: str


# ---- control API -------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneNumberIn(_Strict):
    phone_number_id: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    display_phone_number: str = "15550000000"
    waba_id: str = "100000000000000"


class RevokeTokenIn(_Strict):
    access_token: str


class WebhookIn(_Strict):
    """Partial update: omitted fields keep their value."""

    callback_url: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None
    duplicates: bool | None = None
    out_of_order: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    retry_base_delay: float | None = Field(default=None, ge=0)
    retry_max_delay: float | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    # Run Meta's GET hub.challenge handshake against a new callback URL.
    verify: bool = True


class LimitsIn(_Strict):
    throughput_per_second: int | None = Field(default=None, ge=1)
    pair_burst: int | None = Field(default=None, ge=1)
    pair_refill_seconds: float | None = Field(default=None, ge=0)


class WindowIn(_Strict):
    enforce: bool | None = None
    seconds: float | None = Field(default=None, gt=0)


class OutageIn(_Strict):
    mode: Literal["off", "error", "hang"]
    status: int | None = Field(default=None, ge=500, le=599)
    hang_seconds: float | None = Field(default=None, gt=0)


class UndeliverableIn(_Strict):
    numbers: list[str]


class FailureRateIn(_Strict):
    rate: float = Field(ge=0.0, le=1.0)


class FailureDeliveryIn(_Strict):
    mode: Literal["response", "webhook"]


class StatusDelaysIn(_Strict):
    """Partial update; send an explicit null to switch a status off."""

    sent: float | None = Field(default=None, ge=0)
    delivered: float | None = Field(default=None, ge=0)
    read: float | None = Field(default=None, ge=0)


class InboundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1)
    phone_number_id: str
    body: str
    name: str = "Simulated User"


class ClockIn(_Strict):
    advance_seconds: float


class TemplateIn(_Strict):
    phone_number_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=15)
    body_parameters: int = Field(default=0, ge=0, le=100)
    category: str = "utility"


class InboundMediaIn(_Strict):
    """Bytes a user sends: stored in the simulator's media store; the message gets its id, sha256, mime_type."""

    data_base64: str
    mime_type: str = Field(min_length=3, max_length=255)
    filename: str | None = None


class InboundMessageIn(BaseModel):
    """Any kind a user sends. `message` is Meta's message object without from/id/timestamp (its `type` and
    the object of that name, optionally `context`: {"message_id"}); with `media`, the media object named by
    `type` gets the uploaded bytes' id, mime_type and sha256."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1)
    phone_number_id: str
    name: str = "Simulated User"
    message: dict[str, Any]
    media: InboundMediaIn | None = None
