"""Counts kept beside the message log: each number's day, and each campaign's messages by number and status.

The message scripts (storage/messages.py) keep them in the same atomic step as the status change they
count, so a count never drifts from the records however a sender, an ack or a failover races another:

* `wa:stats:{ws}:{YYYYMMDD}` (UTC days), field `{sid}|{metric}`: +1 when one of the session's WhatsApp
  Web messages first reaches `sent` (or beyond: an ack can overtake `sent`), `delivered` (or `read`),
  `read`, or `failed`. Other metrics of the day (`received`, `replies`, `uptime_s`) are added with
  `bump` by whoever sees them.
* `wa:cmp-n:{ws}`, field `{campaign}|{sid or "meta"}|{status}`: how many of a campaign's messages are in
  that status on that number now; a status change is -1 on the old bucket and +1 on the new one.

Days expire after DAY_TTL_S, so a day key never outlives what the stats route can show.
"""

from __future__ import annotations

import time
from collections import defaultdict

import redis.asyncio as aioredis

from wa_ray.storage import keys

DAY_TTL_S = 100 * 24 * 3600
CLOUD = "meta"  # the number of a campaign message that the Cloud API sends


def day_of(ts: float | None = None) -> str:
    """The UTC day of `ts` (now by default) as `YYYYMMDD`."""
    return time.strftime("%Y%m%d", time.gmtime(time.time() if ts is None else ts))


async def bump(redis: aioredis.Redis, ws: str, sid: str, metric: str, by: float = 1, ts: float | None = None) -> None:
    """Add `by` to one number's `metric` for the day of `ts`."""
    key = keys.session_day_stats(ws, day_of(ts))
    async with redis.pipeline(transaction=False) as pipe:
        if isinstance(by, int):
            pipe.hincrby(key, f"{sid}|{metric}", by)
        else:
            pipe.hincrbyfloat(key, f"{sid}|{metric}", by)
        pipe.expire(key, DAY_TTL_S)
        await pipe.execute()


async def session_days(redis: aioredis.Redis, ws: str, sid: str, days: list[str]) -> dict[str, dict[str, float]]:
    """Day -> metric -> count for one number (a day with nothing is an empty dict)."""
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(keys.session_day_stats(ws, day))
        replies = await pipe.execute()
    out: dict[str, dict[str, float]] = {}
    prefix = f"{sid}|"
    for day, fields in zip(days, replies, strict=True):
        out[day] = {f[len(prefix):]: float(v) for f, v in fields.items() if f.startswith(prefix)}
    return out


async def campaign_counts(redis: aioredis.Redis, ws: str, campaign: str) -> dict[str, dict[str, int]]:
    """Number (a session id, or "meta") -> status -> count of the campaign's messages now."""
    prefix = f"{campaign}|"
    out: dict[str, dict[str, int]] = defaultdict(dict)
    async for field, value in redis.hscan_iter(keys.campaign_counts(ws), match=f"{campaign}|*", count=500):
        who, _, status = field[len(prefix):].rpartition("|")
        if int(value):
            out[who][status] = int(value)
    return dict(out)


async def forget_campaign(redis: aioredis.Redis, ws: str, campaign: str) -> None:
    """Drop a deleted campaign's counts."""
    fields = [f async for f, _ in redis.hscan_iter(keys.campaign_counts(ws), match=f"{campaign}|*", count=500)]
    if fields:
        await redis.hdel(keys.campaign_counts(ws), *fields)
