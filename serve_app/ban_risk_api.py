"""A workspace's ban-risk policy and the operator's resume of a paused number.

`GET|PUT /v1/workspaces/{ws}/ban-risk`: `{enabled, daily_new_contacts, warn_at, pause_at,
resume_cooldown_s}` (storage/ban_risk.py says what each does). PUT changes the fields it names (an
explicit `pause_at: null` means never pause) and needs a writable key; senders see it within 5 s.

`POST /v1/workspaces/{ws}/sessions/{sid}/resume` (writable key): ends the number's automatic pause (a
ban-risk pause, or the hold of the daily new-contacts cap) and suppresses both for the policy's
`resume_cooldown_s`; publishes `session.resumed` `{reason, operator: true}` when a pause ended. The
hourly pacing cap is not the operator's to lift (raise `per_hour` instead).

`GET /v1/workspaces/{ws}/sessions/{sid}/ban-risk`: the number's last score, and whether it is paused.
Another workspace's session is the same 404 as an unknown one; a bad body is 422 without its values.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from wa_ray.events import SESSION_RESUMED, Event
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, session_record, workspace, writable_workspace
from wa_ray.serve_app.json_types import json_int
from wa_ray.serve_app.message_models import STRICT_INPUT
from wa_ray.serve_app.openapi import errors
from wa_ray.storage import keys
from wa_ray.storage.ban_risk import (COOLDOWN_LIMITS, DAILY_NEW_CONTACTS_LIMITS, MAX_WARN_AT, THRESHOLD_LIMITS,
                                    BanRiskPolicy, BanRiskStore, policy_from, risk_of)

router = APIRouter(tags=["ban risk"])

Threshold = json_int(*THRESHOLD_LIMITS)


class BanRiskIn(BaseModel):
    model_config = ConfigDict(**STRICT_INPUT, json_schema_extra={"examples": [
        {"enabled": True, "daily_new_contacts": 500, "warn_at": [70, 90], "pause_at": 90},
        {"daily_new_contacts": 200}, {"pause_at": None}]})
    enabled: bool | None = Field(default=None, strict=True, description="false: no cap, no score, no pause")
    daily_new_contacts: json_int(*DAILY_NEW_CONTACTS_LIMITS) | None = Field(  # type: ignore[valid-type]
        default=None, description="first contacts a number may make in a rolling 24 h")
    warn_at: list[Threshold] | None = Field(default=None, max_length=MAX_WARN_AT,
                                            description="scores (1..100) whose upward crossing publishes "
                                                        "`session.ban_risk`")
    pause_at: Threshold | None = Field(default=None, description="the score that pauses the number until an "
                                                                 "operator resumes it; null: never")
    resume_cooldown_s: json_int(*COOLDOWN_LIMITS) | None = Field(  # type: ignore[valid-type]
        default=None, description="after a resume, no automatic pause for this long")


class BanRiskOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [BanRiskPolicy().to_dict()]})
    enabled: bool
    daily_new_contacts: int
    warn_at: list[int]
    pause_at: int | None
    resume_cooldown_s: int

    @classmethod
    def of(cls, policy: BanRiskPolicy) -> BanRiskOut:
        return cls(**policy.to_dict())


class ResumeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"session_id": "support-1", "resumed": "ban_risk", "cooldown_until": 1765003600.0},
        {"session_id": "support-1", "resumed": None, "cooldown_until": None}]})
    session_id: str
    resumed: Literal["ban_risk", "daily_contacts_cap"] | None = Field(
        description="the pause this ended; null when the number was not paused by either")
    cooldown_until: float | None = Field(description="unix seconds until which no automatic pause applies")


class RiskOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "session_id": "support-1", "paused": False, "cooldown": False,
        "risk": {"score": 72.5, "level": "warning", "at": 1765000000.123,
                 "factors": {"send_rate": 20.0, "new_contacts": 30.0, "failed": 7.5, "refused": 0.0,
                             "few_replies": 15.0}}}]})
    session_id: str
    risk: dict[str, Any] | None = Field(description="the last evaluation `{score, level, factors, at}`; null "
                                                    "before the number's first send")
    paused: bool = Field(description="paused by its ban-risk score until an operator resumes it")
    cooldown: bool = Field(description="inside the cool-down after a resume (no automatic pause)")


def _store(c: AppContext) -> BanRiskStore:
    return BanRiskStore(c.redis, cache_ttl_s=0)  # the API reads what is stored, never a cached copy


@router.get("/v1/workspaces/{ws}/ban-risk", response_model=BanRiskOut, responses=errors(),
            summary="This workspace's ban-risk policy (daily new-contacts cap, warnings, automatic pause)")
async def get_ban_risk(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> BanRiskOut:
    return BanRiskOut.of(await _store(c).policy(ws))


@router.put("/v1/workspaces/{ws}/ban-risk", response_model=BanRiskOut, responses=errors(400, 413, 422),
            summary="Change this workspace's ban-risk policy (the fields named)")
async def put_ban_risk(body: BanRiskIn, ws: str = Depends(writable_workspace),
                       c: AppContext = Depends(ctx)) -> BanRiskOut:
    store = _store(c)
    # a null is "unchanged", except for pause_at, where it means never pause
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "pause_at"}
    merged = {**(await store.policy(ws)).to_dict(), **changes}
    return BanRiskOut.of(await store.set_policy(ws, policy_from(merged)))


@router.post("/v1/workspaces/{ws}/sessions/{sid}/resume", response_model=ResumeOut, responses=errors(),
             summary="End the number's ban-risk pause or daily-cap hold; no automatic pause for a cool-down")
async def resume_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> ResumeOut:
    await session_record(c, ws, sid)
    store = _store(c)
    cooldown = (await store.policy(ws)).resume_cooldown_s
    ended = await store.resume(ws, sid, cooldown)
    if ended is not None:
        await c.events.publish(Event(SESSION_RESUMED, ws, sid, {"reason": ended, "operator": True}))
    return ResumeOut(session_id=sid, resumed=ended, cooldown_until=time.time() + cooldown if cooldown else None)


@router.get("/v1/workspaces/{ws}/sessions/{sid}/ban-risk", response_model=RiskOut, responses=errors(),
            summary="The number's last ban-risk score and whether it is paused")
async def session_risk(sid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> RiskOut:
    await session_record(c, ws, sid)
    async with c.redis.pipeline(transaction=False) as pipe:
        pipe.exists(keys.risk_paused(ws, sid))
        pipe.exists(keys.risk_cooldown(ws, sid))
        paused, cooling = await pipe.execute()
    return RiskOut(session_id=sid, risk=await risk_of(c.redis, ws, sid), paused=bool(paused), cooldown=bool(cooling))
