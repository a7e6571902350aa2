"""Per-number stats: what one session did on each of the last N UTC days.

`GET /v1/workspaces/{ws}/sessions/{sid}/stats?days=7` (any key of the workspace; 1..90 days). The counts
come from the day tallies the message scripts and the inbound hook keep (storage/tallies.py); uptime is
the stored connected seconds of each day plus the stretch still running (today's part, and earlier days'
when it began before midnight) (storage/uptime.py).
Days are oldest first and always all present (a day with nothing is zeros). A session the workspace does
not have (another workspace's included) is 404, as on every session route.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, session_record, workspace
from wa_ray.serve_app.openapi import errors
from wa_ray.states import SessionState
from wa_ray.storage import tallies, uptime
from wa_ray.storage.ban_risk import risk_of

router = APIRouter(prefix="/v1/workspaces/{ws}/sessions", tags=["sessions"])

COUNTS = ("sent", "delivered", "read", "failed", "refused", "received", "replies")
MAX_DAYS = 90  # inside tallies.DAY_TTL_S: every day shown still has its key


class StatsTotals(BaseModel):
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    refused: int = Field(default=0, description="sends the server refused (ack -1: blocked, or not on WhatsApp); "
                                                "one of the ban-risk score's factors")
    received: int = Field(default=0, description="inbound messages (not from this number)")
    replies: int = Field(default=0, description="contacts that wrote back within 24 h of a message to them")
    uptime_s: float = Field(default=0.0, description="seconds connected")


class DayStats(StatsTotals):
    day: str = Field(description="UTC day, YYYY-MM-DD")


class SessionStats(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "session_id": "main",
        "days": [{"day": "2026-03-01", "sent": 120, "delivered": 118, "read": 90, "failed": 2, "refused": 1,
                  "received": 40, "replies": 31, "uptime_s": 86400.0}],
        "totals": {"sent": 120, "delivered": 118, "read": 90, "failed": 2, "refused": 1, "received": 40,
                   "replies": 31, "uptime_s": 86400.0},
        "ban_risk": None}]})

    session_id: str
    days: list[DayStats] = Field(description="oldest first, one per UTC day, today last")
    totals: StatsTotals
    ban_risk: dict[str, Any] | None = Field(default=None, description="the number's last ban-risk evaluation "
                                            "(score, level, factors, at), or null")


def day_list(now: float, days: int) -> list[str]:
    """The last `days` UTC days up to `now`'s, oldest first, as `YYYYMMDD`."""
    today = uptime.day_start(now)
    return [tallies.day_of(today - i * uptime.DAY_S) for i in range(days - 1, -1, -1)]


def build(sid: str, per_day: dict[str, dict[str, float]], ban_risk: dict[str, Any] | None) -> SessionStats:
    out, totals = [], StatsTotals()
    for day, metrics in per_day.items():
        row = DayStats(day=f"{day[:4]}-{day[4:6]}-{day[6:]}", uptime_s=round(metrics.get(uptime.UPTIME, 0.0), 1),
                       **{m: int(metrics.get(m, 0)) for m in COUNTS})
        out.append(row)
        for m in COUNTS:
            setattr(totals, m, getattr(totals, m) + getattr(row, m))
        totals.uptime_s = round(totals.uptime_s + row.uptime_s, 1)
    return SessionStats(session_id=sid, days=out, totals=totals, ban_risk=ban_risk)


@router.get("/{sid}/stats", response_model=SessionStats, responses=errors(422),
            summary="One number's day stats: sent, delivered, read, failed, received, replies, uptime")
async def session_stats(sid: str, days: int = Query(7, ge=1, le=MAX_DAYS, description="how many UTC days, "
                                                    "today included"),
                        ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> SessionStats:
    record = await session_record(c, ws, sid)
    now = time.time()
    wanted = day_list(now, days)
    per_day = await tallies.session_days(c.redis, ws, sid, wanted)
    if record.get("state") == SessionState.CONNECTED.value and record.get("since"):
        # the stretch still running is credited only when it ends: show it now, split as it will be
        for day, seconds in uptime.split_by_day(float(record["since"]), now):
            if day in per_day:
                per_day[day][uptime.UPTIME] = per_day[day].get(uptime.UPTIME, 0.0) + seconds
    return build(sid, per_day, await risk_of(c.redis, ws, sid))
