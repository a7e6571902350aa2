"""Request and response models of the webhook endpoints (serve_app/webhook_endpoints_api.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from wa_ray.actors.webhook_signing import STANDARD_PREFIX, is_standard_secret
from wa_ray.serve_app.message_models import STRICT_INPUT
from wa_ray.storage.webhook_endpoints import MAX_HEADERS

_URL = Field(min_length=1, max_length=2048, description="http(s) URL that receives the signed POSTs; checked by the "
                                                        "egress guard (422 `egress_denied`)")
_SECRET = Field(default=None, min_length=16, max_length=256,
                description="the signing secret, `whsec_<base64 of 24-64 bytes>` (Standard Webhooks) or any "
                            "16-256 characters; absent on create: one is generated and returned once")
_EVENTS = Field(description="event types to deliver: a type (`message.received`), a prefix (`message.*`) or `*`")
_HEADERS = Field(description="sent with every delivery (e.g. a receiver's own `Authorization`); stored encrypted, "
                             "never returned: reads show `header_names` only. Our own headers (`webhook-*`, "
                             "`X-Event-*`, `X-Signature`, ...) and HTTP's (`Host`, `Content-Length`, ...) are refused")
_DESCRIPTION = Field(description="a note for people")
Pattern = Annotated[str, Field(min_length=1, max_length=64)]


def _standard_form(secret: str | None) -> str | None:
    if secret is not None and secret.startswith(STANDARD_PREFIX) and not is_standard_secret(secret):
        raise ValueError("a whsec_ secret must be the base64 of 24 to 64 bytes")
    return secret


class BatchIn(BaseModel):
    model_config = STRICT_INPUT
    max_events: int = Field(ge=2, le=100, description="events per POST at most")
    max_wait_ms: int = Field(ge=10, le=60_000, description="how long a batch waits to fill before it is sent")


class EndpointIn(BaseModel):
    url: str = _URL
    secret: str | None = _SECRET
    events: list[Pattern] = Field(default_factory=lambda: ["*"], min_length=1, max_length=50,
                                  description=_EVENTS.description)
    headers: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=MAX_HEADERS, description=_HEADERS.description)
    batch: BatchIn | None = Field(default=None, description="deliver JSON arrays of events; absent: one per POST")
    description: str = Field(default="", max_length=200, description=_DESCRIPTION.description)

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, secret: str | None) -> str | None:
        return _standard_form(secret)

    model_config = {**STRICT_INPUT, "json_schema_extra": {"examples": [{
        "url": "https://app.example.com/hooks/wa-ray", "events": ["message.*", "session.status"],
        "headers": {"Authorization": "Bearer 4f9c..."}, "batch": {"max_events": 50, "max_wait_ms": 1000},
        "description": "inbox"}]}}


class EndpointPatch(BaseModel):
    """Only the fields given change; `"batch": null` turns batching off."""

    model_config = {**STRICT_INPUT, "json_schema_extra": {"examples": [{"events": ["*"], "batch": None}]}}
    url: str | None = Field(default=None, min_length=1, max_length=2048, description=_URL.description)
    secret: str | None = Field(default=None, min_length=16, max_length=256, description="a new signing secret")
    events: list[Pattern] | None = Field(default=None, min_length=1, max_length=50, description=_EVENTS.description)
    headers: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1024)]] | None = Field(
        default=None, max_length=MAX_HEADERS, description="replaces every custom header")
    batch: BatchIn | None = None
    description: str | None = Field(default=None, max_length=200)

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, secret: str | None) -> str | None:
        return _standard_form(secret)


class BatchOut(BaseModel):
    max_events: int
    max_wait_ms: int


class EndpointOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{
        "id": "we_5f0c1a2b3c4d5e6f", "url": "https://app.example.com/hooks/wa-ray",
        "events": ["message.*", "session.status"], "header_names": ["Authorization"],
        "batch": {"max_events": 50, "max_wait_ms": 1000}, "description": "inbox", "created_at": 1796515200.0,
        "secret": "whsec_ZXhhbXBsZS1zZWNyZXQtbm90LWZvci11c2U="}]}}
    id: str
    url: str
    events: list[str]
    header_names: list[str]
    batch: BatchOut | None
    description: str
    created_at: float
    secret: str | None = Field(default=None, description="only in the answer to a create that generated it")

    @classmethod
    def of(cls, public: dict[str, Any], secret: str | None = None) -> EndpointOut:
        return cls(**public, secret=secret)


class EndpointList(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"items": [
        {**EndpointOut.model_config["json_schema_extra"]["examples"][0], "secret": None}]}]}}  # type: ignore[index]
    items: list[EndpointOut]
