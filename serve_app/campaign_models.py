"""Bodies and answers of /v1/workspaces/{ws}/campaigns (serve_app/campaigns_api.py).

The campaign's `message` is one kind's body as POST /messages takes it, without `to`, `session_id`,
`strict` and `reply_to`, and never a reaction: the models here are built from the send models
(serve_app/send_models.py) by leaving those fields out (`campaign_kind`), so the published schema says what
the route accepts and a kind's rules live in one place; the route then checks the body as POST /messages
does. Its `text` or `caption` may use `{{var}}`, filled from each recipient's `variables`. The optional
`fallback_template` is a template message of the same shape (`type: template`), whose parameters' `text`
may use `{{var}}` too. Input models refuse unknown fields; no rule's message quotes the value it refuses.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, field_validator

from wa_ray.ids import ID_PATTERN, PHONE_PATTERN
from wa_ray.serve_app.send_models import (
    STRICT, AudioMessage, ContactsMessage, DocumentMessage, ImageMessage, LocationMessage, PollMessage, Priority,
    StickerMessage, TemplateMessage, TextMessage, VideoMessage, VoiceMessage)

VAR_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
VAR_MAX = 1024
HM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
ZONE_PATTERN = r"^[A-Za-z0-9_+\-/]{1,64}$"
INLINE_MAX = 1000  # more recipients: a draft and POST .../recipients (CSV)

NOT_IN_MESSAGE = ("to", "session_id", "strict", "reply_to")  # the campaign's, per recipient


def campaign_kind(model: type[BaseModel]) -> type[BaseModel]:
    """`model` (a POST /messages kind) without NOT_IN_MESSAGE: the same fields, bounds and descriptions. Its
    validators are not carried over; the route validates the body with the send models themselves."""
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in model.model_fields.items() if n not in NOT_IN_MESSAGE}
    return create_model(f"Campaign{model.__name__}", __config__=STRICT, __doc__=model.__doc__, **fields)


_KINDS = {k: campaign_kind(m) for k, m in (
    ("text", TextMessage), ("image", ImageMessage), ("video", VideoMessage), ("audio", AudioMessage),
    ("voice", VoiceMessage), ("document", DocumentMessage), ("sticker", StickerMessage),
    ("location", LocationMessage), ("contacts", ContactsMessage), ("poll", PollMessage),
    ("template", TemplateMessage))}


def _campaign_kind_of(value: Any) -> str | None:
    """The tag: `type`, "text" when absent; None (a 422 that quotes nothing) for a reaction or anything else."""
    kind = value.get("type", "text") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _KINDS else None


CampaignMessage = Annotated[
    Union[tuple(Annotated[model, Tag(kind)] for kind, model in _KINDS.items())],  # noqa: UP007 (built, not written)
    Discriminator(_campaign_kind_of, custom_error_type="unknown_type",
                  custom_error_message="type must be one of the message kinds a campaign sends (not a reaction)"),
]
FallbackTemplate = _KINDS["template"]


def message_body(message: BaseModel) -> dict[str, Any]:
    """The fields the client gave (defaults stay the send models' to fill), for the send models' check."""
    return message.model_dump(exclude_unset=True)


Variables = Annotated[dict[Annotated[str, Field(pattern=VAR_PATTERN)], Annotated[str, Field(max_length=VAR_MAX)]],
                      Field(json_schema_extra={"additionalProperties": False})]  # names only by VAR_PATTERN
# the zones the check accepts, so the published schema says it (an unknown name is not a shape error)
ZONES = sorted(z for z in available_timezones() if re.fullmatch(ZONE_PATTERN, z))


class RecipientIn(BaseModel):
    model_config = STRICT
    to: str = Field(pattern=PHONE_PATTERN, description="a phone number, E.164 digits without '+'")
    variables: Variables = Field(default_factory=dict, max_length=20, description="values of `{{var}}`")


class DailyHours(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", pattern=HM_PATTERN, description="local HH:MM the window opens")
    to: str = Field(pattern=HM_PATTERN, description="local HH:MM it closes (before `from`: past midnight)")


class ScheduleIn(BaseModel):
    model_config = STRICT
    start_at: Annotated[float, Field(ge=0, lt=1e11)] | dt.datetime | None = Field(
        default=None, description="epoch seconds or ISO 8601")
    daily_hours: DailyHours | None = None
    time_zone: str = Field(default="UTC", pattern=ZONE_PATTERN, description="IANA zone of daily_hours",
                           json_schema_extra={"enum": ZONES})

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("time_zone: not a known IANA time zone") from exc
        return value

    @field_validator("start_at")
    @classmethod
    def _epoch(cls, value: float | dt.datetime | None) -> float | None:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.timestamp()
        if value is not None and not 0 <= value < 1e11:
            raise ValueError("start_at: out of range")
        return value

    def stored(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start_at": self.start_at, "time_zone": self.time_zone}
        if self.daily_hours:
            out["daily_hours"] = {"from": self.daily_hours.from_, "to": self.daily_hours.to}
        return out


class CampaignCreate(BaseModel):
    model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [
        {"name": "December restock", "priority": "bulk",
         "message": {"type": "text", "text": "Hi {{first_name}}, the boots you asked about are back in stock"},
         "fallback_template": {"type": "template", "name": "restock_notice", "language": "en_US",
                               "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"}]}]},
         "recipients": [{"to": "15551230001", "variables": {"first_name": "Ana"}},
                        {"to": "15551230002", "variables": {"first_name": "Bruno"}}],
         "numbers": ["support-1", "sales-2"],
         "schedule": {"start_at": "2026-12-08T09:00:00-03:00", "daily_hours": {"from": "09:00", "to": "18:00"},
                      "time_zone": "America/Sao_Paulo"}},
        {"name": "Catalog draft", "message": {"type": "image", "media": {"media_id": "med_5f2a9c0e7b1d43a8e6f10c2b"},
                                              "caption": "New arrivals, {{first_name}}"}, "draft": True}]})
    name: str = Field(min_length=1, max_length=200)
    message: CampaignMessage = Field(description=(
        "one kind's POST /messages body without to/session_id/strict/reply_to (not a reaction); `text` and "
        "`caption` may use {{var}}"))
    fallback_template: FallbackTemplate | None = Field(  # type: ignore[valid-type]
        default=None, description=(
            "a template (`type: template`) the Cloud API sends to a recipient whose number is lost mid-campaign "
            "when no other number of the campaign can take it (needs the workspace's Cloud API); its "
            "parameters' `text` may use {{var}}"))
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=INLINE_MAX)
    numbers: Literal["all"] | Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]],
                                        Field(min_length=1, max_length=100)] = "all"
    schedule: ScheduleIn | None = None
    priority: Priority = "bulk"
    draft: bool = Field(default=False, description="true: add recipients (CSV) first, then POST .../start")


class CampaignTotals(BaseModel):
    recipients: int
    pending: int = Field(description="not yet on a number: not fed yet, or held (paused, waiting for a number)")
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    replied: int
    cancelled: int


class NumberCounts(BaseModel):
    assigned: int = Field(description="this campaign's messages on this number now, whatever their status")
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    replied: int


CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
Waiting = Literal["schedule", "plan_limit", "numbers"]


_NUMBER_COUNTS = {"assigned": 60, "queued": 12, "sent": 48, "delivered": 45, "read": 30, "failed": 1, "replied": 4}
CAMPAIGN_EXAMPLE: dict[str, Any] = {
    "campaign_id": "cmp_8d3e1f0a2b4c6d7e", "name": "December restock", "status": "running",
    "created_at": 1765000000.123, "started_at": 1765004400.0, "finished_at": None,
    "totals": {"recipients": 200, "pending": 80, "queued": 24, "sent": 96, "delivered": 90, "read": 60,
               "failed": 2, "replied": 8, "cancelled": 0},
    "numbers": {"support-1": _NUMBER_COUNTS, "sales-2": _NUMBER_COUNTS}, "eta_s": 1860.0, "eta_at": 1765008000.0,
    "waiting": None}


class CampaignOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        CAMPAIGN_EXAMPLE,
        {**CAMPAIGN_EXAMPLE, "status": "draft", "started_at": None, "eta_s": None, "eta_at": None, "numbers": {},
         "totals": {"recipients": 0, "pending": 0, "queued": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0,
                    "replied": 0, "cancelled": 0}}]})
    campaign_id: str
    name: str
    status: CampaignStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    totals: CampaignTotals
    numbers: dict[str, NumberCounts] = Field(description="by session id, or `meta` for the Cloud API")
    eta_s: float | None = Field(description="seconds to finish at the numbers' pacing capacity; null: no number")
    eta_at: float | None
    waiting: Waiting | None = Field(default=None, description="why a running campaign is not feeding now")


class CampaignList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"campaigns": [CAMPAIGN_EXAMPLE]}]})
    campaigns: list[CampaignOut]


class RecipientsAdded(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"added": 150, "recipients": 200}]})
    added: int
    recipients: int = Field(description="the campaign's recipients now")
