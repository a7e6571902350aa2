"""A number's connected time, as seconds per UTC day.

A session's registry record says since when it is in its state (`since`). When it leaves `connected`, the
stretch [since, now] is added to the `uptime_s` tally of each UTC day it covers (storage/tallies.py); the
stats route adds the stretch still running for today. Both split the same way, so a stretch across midnight
is never counted twice nor credited to one day only.

Invariants: the pieces of a stretch sum to its length (bounded as below), each lies inside one UTC day, and
no piece is older than `tallies.DAY_TTL_S` (a day key that old is gone anyway; a corrupt `since` such as 0
can then never make tens of thousands of writes).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from wa_ray.storage import tallies

DAY_S = 86_400
UPTIME = "uptime_s"


def day_start(ts: float) -> float:
    """Start (epoch seconds) of the UTC day holding `ts`."""
    return ts - ts % DAY_S


def pieces(start: float, end: float) -> list[tuple[float, float]]:
    """The stretch [start, end) cut at UTC midnights: (piece start, seconds), oldest first; empty when
    end <= start."""
    start = max(start, end - tallies.DAY_TTL_S)
    out: list[tuple[float, float]] = []
    while start < end:
        boundary = min(day_start(start) + DAY_S, end)
        out.append((start, boundary - start))
        start = boundary
    return out


def split_by_day(start: float, end: float) -> list[tuple[str, float]]:
    """The stretch [start, end) as (`YYYYMMDD`, seconds) per UTC day, oldest first."""
    return [(tallies.day_of(at), seconds) for at, seconds in pieces(start, end)]


def running_today(since: float, now: float) -> float:
    """Seconds of a stretch still running (connected since `since`) that fall in `now`'s UTC day."""
    return max(0.0, now - max(since, day_start(now)))


async def add_stretch(redis: aioredis.Redis, ws: str, sid: str, start: float, end: float) -> None:
    """Credit a finished connected stretch to the days it covers."""
    for at, seconds in pieces(start, end):
        await tallies.bump(redis, ws, sid, UPTIME, float(seconds), ts=at)
