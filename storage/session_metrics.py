"""What the opt-in per-session Prometheus series report, read from Redis at scrape time.

One series set per number multiplies a scrape's cardinality, so the operator turns them on
(WA_METRICS_PER_SESSION) and bounds them (WA_METRICS_SESSION_MAX). Over the bound, the sessions reported
are the first ones by (workspace, session id): a stable set, so a series does not come and go between
scrapes; how many were left out is reported too.

Cost: one pipeline (each shown session's state, each shown workspace's day tallies), plus one ban-risk read
per shown session when a reader is given (RISK_READS_AT_ONCE at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from wa_ray.states import SessionState
from wa_ray.storage import keys, tallies

RISK_READS_AT_ONCE = 50  # concurrent ban-risk reads per scrape (a few pool connections, not one per session)
TODAY_METRICS: tuple[str, ...] = ("sent", "delivered", "read", "failed", "received", "replies")

RiskReader = Callable[[aioredis.Redis, str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class SessionSeries:
    workspace: str
    session: str
    connected: bool
    today: dict[str, int]  # every TODAY_METRICS name, 0 when nothing happened
    ban_risk: float | None  # the last score 0..100, None when never evaluated


@dataclass(frozen=True)
class PerSession:
    series: list[SessionSeries]
    omitted: int  # sessions past the bound, not reported


async def per_session(redis: aioredis.Redis, limit: int, risk: RiskReader | None = None,
                      now: float | None = None) -> PerSession:
    members = sorted(await redis.smembers(keys.all_sessions()))
    shown = [tuple(m.split("/", 1)) for m in members[:max(0, limit)] if "/" in m]
    if not shown:
        return PerSession([], max(0, len(members) - len(shown)))
    day = tallies.day_of(now)
    workspaces = sorted({ws for ws, _ in shown})
    async with redis.pipeline(transaction=False) as pipe:
        for ws, sid in shown:
            pipe.hget(keys.session(ws, sid), "state")
        for ws in workspaces:
            pipe.hgetall(keys.session_day_stats(ws, day))
        replies = await pipe.execute()
    states, days = replies[:len(shown)], dict(zip(workspaces, replies[len(shown):], strict=True))
    risks: list[dict[str, Any] | None] = [None] * len(shown)
    if risk is not None:
        for i in range(0, len(shown), RISK_READS_AT_ONCE):
            risks[i:i + RISK_READS_AT_ONCE] = await asyncio.gather(
                *(risk(redis, ws, sid) for ws, sid in shown[i:i + RISK_READS_AT_ONCE]))
    out = []
    for (ws, sid), state, found in zip(shown, states, risks, strict=True):
        fields = days[ws]
        today = {m: int(float(fields.get(f"{sid}|{m}", 0))) for m in TODAY_METRICS}
        score = float(found["score"]) if found and isinstance(found.get("score"), int | float) else None
        out.append(SessionSeries(ws, sid, state == SessionState.CONNECTED.value, today, score))
    return PerSession(out, len(members) - len(shown))
