"""Bodies and answers of /v1/workspaces/{ws}/campaigns (serve_app/campaigns_api.py).

The campaign's `message` is one kind's body as POST /messages takes it, without `to`, `session_id`,
`strict` and `reply_to` (the route validates it with the send models, serve_app/send_models.py); its
`text` or `caption` may use `{{var}}`, filled from each recipient's `variables`. Input models refuse
unknown fields; no rule's message quotes the value it refuses.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wa_ray.ids import ID_PATTERN, PHONE_PATTERN
from wa_ray.serve_app.send_models import STRICT, Priority

VAR_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
VAR_MAX = 1024
HM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
ZONE_PATTERN = r"^[A-Za-z0-9_+\-/]{1,64}$"
INLINE_MAX = 1000  # more recipients: a draft and POST .../recipients (CSV)

Variables = dict[Annotated[str, Field(pattern=VAR_PATTERN)], Annotated[str, Field(max_length=VAR_MAX)]]


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
    start_at: float | dt.datetime | None = Field(default=None, description="epoch seconds or ISO 8601")
    daily_hours: DailyHours | None = None
    time_zone: str = Field(default="UTC", pattern=ZONE_PATTERN, description="IANA zone of daily_hours")

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
    model_config = STRICT
    name: str = Field(min_length=1, max_length=200)
    message: dict[str, Any] = Field(description="one kind's POST /messages body without to/session_id/strict")
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


class CampaignOut(BaseModel):
    model_config = ConfigDict(extra="allow")
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
    campaigns: list[CampaignOut]


class RecipientsAdded(BaseModel):
    added: int
    recipients: int = Field(description="the campaign's recipients now")
