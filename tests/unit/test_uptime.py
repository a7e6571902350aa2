"""Uptime per UTC day: the arithmetic (pure) and the registry crediting a connected stretch when it ends."""

from __future__ import annotations

import calendar
import time

import pytest
import redis.asyncio as aioredis

from wa_ray.storage import keys, tallies, uptime
from wa_ray.storage.registry import SessionRegistry

MIDNIGHT = float(calendar.timegm((2026, 3, 1, 0, 0, 0)))  # 2026-03-01T00:00:00Z


def test_a_stretch_inside_one_day_is_one_piece() -> None:
    assert uptime.split_by_day(MIDNIGHT + 60, MIDNIGHT + 3660) == [("20260301", 3600.0)]


def test_a_stretch_across_midnight_is_split_at_midnight() -> None:
    assert uptime.split_by_day(MIDNIGHT - 90, MIDNIGHT + 30) == [("20260228", 90.0), ("20260301", 30.0)]


def test_a_stretch_ending_exactly_at_midnight_stays_in_its_day() -> None:
    assert uptime.split_by_day(MIDNIGHT - 10, MIDNIGHT) == [("20260228", 10.0)]


def test_a_stretch_over_several_days_has_full_days_in_the_middle() -> None:
    pieces = uptime.split_by_day(MIDNIGHT - 100, MIDNIGHT + 2 * uptime.DAY_S + 5)
    assert pieces == [("20260228", 100.0), ("20260301", 86400.0), ("20260302", 86400.0), ("20260303", 5.0)]
    assert sum(s for _, s in pieces) == 2 * uptime.DAY_S + 105


@pytest.mark.parametrize("start, end", [(MIDNIGHT, MIDNIGHT), (MIDNIGHT + 5, MIDNIGHT)])
def test_an_empty_or_backwards_stretch_counts_nothing(start: float, end: float) -> None:
    assert uptime.split_by_day(start, end) == []


def test_a_corrupt_since_is_bounded_by_what_the_days_keep() -> None:
    pieces = uptime.split_by_day(0.0, MIDNIGHT)
    assert sum(s for _, s in pieces) == tallies.DAY_TTL_S
    assert len(pieces) == tallies.DAY_TTL_S // uptime.DAY_S


def test_the_running_stretch_counts_only_todays_part() -> None:
    assert uptime.running_today(MIDNIGHT - 500, MIDNIGHT + 20) == 20.0
    assert uptime.running_today(MIDNIGHT + 5, MIDNIGHT + 20) == 15.0
    assert uptime.running_today(MIDNIGHT + 30, MIDNIGHT + 20) == 0.0


async def _uptime(redis: aioredis.Redis, day_ts: float) -> float:
    days = await tallies.session_days(redis, "ws1", "s1", [tallies.day_of(day_ts)])
    return days[tallies.day_of(day_ts)].get("uptime_s", 0.0)


async def test_leaving_connected_credits_the_stretch_across_midnight(redis: aioredis.Redis) -> None:
    registry = SessionRegistry(redis)
    await registry.register("ws1", "s1", "node")
    await registry.set_state("ws1", "s1", "connected")
    now = time.time()
    # the stretch began 30 s before yesterday's end (as if the session had connected then)
    since = uptime.day_start(now) - 30
    await redis.hset(keys.session("ws1", "s1"), "since", since)
    await registry.set_state("ws1", "s1", "reconnecting", reason="page closed")
    assert await _uptime(redis, since) == pytest.approx(30.0)
    assert await _uptime(redis, now) == pytest.approx(time.time() - uptime.day_start(now), abs=1.0)
    record = await registry.get("ws1", "s1")
    assert record["state"] == "reconnecting" and record["reason"] == "page closed"


async def test_only_a_connected_stretch_counts_and_only_once(redis: aioredis.Redis) -> None:
    registry = SessionRegistry(redis)
    await registry.register("ws1", "s1", "node")
    await registry.set_state("ws1", "s1", "qr_required")
    await registry.set_state("ws1", "s1", "authenticating")
    assert await _uptime(redis, time.time()) == 0.0  # never connected: nothing
    await registry.set_state("ws1", "s1", "connected")
    await redis.hset(keys.session("ws1", "s1"), "since", time.time() - 40)
    await registry.set_state("ws1", "s1", "disconnected")
    await registry.set_state("ws1", "s1", "stopped")  # leaving a non-connected state adds nothing more
    assert await _uptime(redis, time.time()) == pytest.approx(40.0, abs=1.0)


async def _total(redis: aioredis.Redis, start: float, end: float) -> float:
    """uptime_s over the UTC days from `start` to `end` (a test run near midnight spans two)."""
    return sum([await _uptime(redis, start), await _uptime(redis, end)]
               if tallies.day_of(start) != tallies.day_of(end) else [await _uptime(redis, end)])


async def test_a_service_stop_ends_the_stretch_when_the_service_was_last_alive(redis: aioredis.Redis) -> None:
    """The whole service stopped under a connected number: the restore credits its stretch up to the last
    alive mark, never the downtime, and the restore's own state changes start from the restore."""
    registry = SessionRegistry(redis)
    await registry.register("ws1", "s1", "node")
    await registry.set_state("ws1", "s1", "connected")
    now = time.time()
    await redis.hset(keys.session("ws1", "s1"), "since", now - 100)  # connected 100 s ago, the service
    await registry.end_stretch_at("ws1", "s1", now - 60)             # last seen alive 60 s ago
    assert await _total(redis, now - 100, now) == pytest.approx(40.0)
    await registry.set_state("ws1", "s1", "starting")  # the restore: only the moment since end_stretch_at counts
    await registry.end_stretch_at("ws1", "s1", now)   # not connected any more: nothing to end
    assert await _total(redis, now - 100, time.time()) == pytest.approx(40.0, abs=1.0)


async def test_without_an_alive_mark_a_stopped_stretch_credits_nothing(redis: aioredis.Redis) -> None:
    registry = SessionRegistry(redis)
    await registry.register("ws1", "s1", "node")
    await registry.set_state("ws1", "s1", "connected")
    now = time.time()
    await redis.hset(keys.session("ws1", "s1"), "since", now - 100)
    await registry.end_stretch_at("ws1", "s1", None)
    await registry.set_state("ws1", "s1", "starting")
    assert await _total(redis, now - 100, time.time()) == pytest.approx(0.0, abs=1.0)
