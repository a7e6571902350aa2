"""Models of the plan-limit routes (serve_app/numbers_api.py); the session's own (SessionOut, SetSession) are
in models.py beside the other session models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.json_types import json_int
from wa_ray.storage.plan_limits import MAX_NUMBERS_BOUNDS, MESSAGES_PER_DAY_BOUNDS, PlanLimits

MaxNumbers = json_int(*MAX_NUMBERS_BOUNDS)
MessagesPerDay = json_int(*MESSAGES_PER_DAY_BOUNDS)


class PlanLimitsIn(BaseModel):
    """Both fields are required: a PUT replaces the limits, and null says unlimited in so many words."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"max_numbers": 5, "messages_per_day": 10000}, {"max_numbers": None, "messages_per_day": None}]})
    max_numbers: MaxNumbers | None = Field(description="most sessions (numbers) the workspace may have; null: "
                                                       "unlimited. Lowering it never removes a number")
    messages_per_day: MessagesPerDay | None = Field(description="most messages accepted per UTC day (POST "
                                                                "/messages and campaigns); null: unlimited")

    def limits(self) -> PlanLimits:
        return PlanLimits(self.max_numbers, self.messages_per_day)


class PlanUsage(BaseModel):
    numbers: int = Field(description="the workspace's sessions now")
    messages_today: int = Field(description="messages counted today (UTC); counted only while messages_per_day "
                                            "is set")


class PlanLimitsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"max_numbers": 5, "messages_per_day": 10000, "usage": {"numbers": 2, "messages_today": 1834}}]})
    max_numbers: int | None
    messages_per_day: int | None
    usage: PlanUsage

    @classmethod
    def of(cls, limits: PlanLimits, numbers: int, messages_today: int) -> PlanLimitsOut:
        return cls(max_numbers=limits.max_numbers, messages_per_day=limits.messages_per_day,
                   usage=PlanUsage(numbers=numbers, messages_today=messages_today))
