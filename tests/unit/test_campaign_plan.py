"""The campaign's schedule window and ETA (storage/campaign_plan.py), and the message rendering: pure."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from wa_ray.actors.campaign_runner import render
from wa_ray.storage.campaign_plan import Schedule, duration_s, eta_s, parse_hm, per_hour
from wa_ray.storage.campaigns import Campaign, summarize
from wa_ray.storage.pacing import PacingPolicy

MADRID = ZoneInfo("Europe/Madrid")


def at(y: int, mo: int, d: int, h: int, mi: int, zone: ZoneInfo = MADRID) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=zone).timestamp()


def test_no_schedule_is_always_open() -> None:
    assert Schedule().is_open(1_000.0) and Schedule().next_open(1_000.0) == 1_000.0


def test_start_at_in_the_future_waits_for_it() -> None:
    s = Schedule(start_at=5_000.0)
    assert not s.is_open(1_000.0) and s.next_open(1_000.0) == 5_000.0 and s.is_open(5_000.0)


def test_daily_hours_in_the_zone() -> None:
    s = Schedule(start_hm=(9, 0), end_hm=(18, 0), time_zone="Europe/Madrid")
    assert s.is_open(at(2026, 3, 10, 9, 0)) and s.is_open(at(2026, 3, 10, 17, 59))
    assert not s.is_open(at(2026, 3, 10, 18, 0))
    assert s.next_open(at(2026, 3, 10, 18, 30)) == at(2026, 3, 11, 9, 0)  # tomorrow morning
    assert s.next_open(at(2026, 3, 10, 7, 0)) == at(2026, 3, 10, 9, 0)  # later today
    # 08:30 UTC is 09:30 in Madrid in winter: open, though 08:30 is before 09:00 on a UTC clock
    assert s.is_open(dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC).timestamp())


def test_daily_hours_across_a_dst_change() -> None:
    s = Schedule(start_hm=(9, 0), end_hm=(18, 0), time_zone="Europe/Madrid")
    # 2026-03-29 Madrid moves from +01:00 to +02:00: the window still opens at 09:00 local
    opens = s.next_open(at(2026, 3, 28, 20, 0))
    assert opens == at(2026, 3, 29, 9, 0)
    assert dt.datetime.fromtimestamp(opens, dt.UTC).hour == 7


def test_window_past_midnight() -> None:
    s = Schedule(start_hm=(22, 0), end_hm=(6, 0), time_zone="UTC")
    utc = ZoneInfo("UTC")
    assert s.is_open(at(2026, 5, 1, 23, 0, utc)) and s.is_open(at(2026, 5, 2, 5, 59, utc))
    assert not s.is_open(at(2026, 5, 2, 6, 0, utc))
    assert s.next_open(at(2026, 5, 2, 12, 0, utc)) == at(2026, 5, 2, 22, 0, utc)


def test_start_at_and_window_together() -> None:
    s = Schedule(start_at=at(2026, 6, 1, 20, 0), start_hm=(9, 0), end_hm=(18, 0), time_zone="Europe/Madrid")
    assert s.next_open(at(2026, 5, 1, 10, 0)) == at(2026, 6, 2, 9, 0)


@pytest.mark.parametrize("bad", ["9:00", "24:00", "12:60", "ab:cd", "1200", ""])
def test_parse_hm_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hm(bad)


def test_per_hour_follows_the_seed_pacing() -> None:
    # seed steps: 5 free, then 1 s, 2 s, 3 s gaps, 5 s above 20 a minute; no typing; 0.5 s per send
    assert per_hour(PacingPolicy(typing=False)) == 1000  # the seed's hourly cap binds
    p = PacingPolicy(typing=False, per_hour=100_000)
    # the first minute from quiet holds 23 sends (5*0.5 + 5*1.5 + 5*2.5 + 5*3.5 = 40 s for 20, then 5.5 s
    # each), but once the window is full the gap stays at 3-5 s: the hour holds fewer than 23 a minute
    first_minute = sum(1 for n in range(1, 40) if duration_s(n, p) <= 60)
    assert first_minute == 23
    assert 15 * 60 < per_hour(p) < 23 * 60
    assert per_hour(PacingPolicy(typing=False, per_hour=100)) == 100  # the hourly cap wins
    assert per_hour(PacingPolicy(typing=False, per_minute=4)) == 4 * 60  # the minute cap wins
    assert per_hour(PacingPolicy(enabled=False)) == 3600 / 0.5
    # typing adds its (jitter-free) delay to every send
    assert per_hour(PacingPolicy(steps=((1000, 0.0),), typing_min_s=1.5, typing_per_char_s=0, per_minute=1000,
                                  per_hour=100_000),
                    send_s=0.5) == 30 * 60


def test_duration_replays_the_minute_cap_and_the_hourly_pause() -> None:
    # no gaps, 30 a minute: each minute's 30 leave at once, the next ones when the first of them is 60 s old
    p = PacingPolicy(steps=((1000, 0.0),), typing=False, per_minute=30, per_hour=100)
    assert duration_s(30, p, send_s=0.0) == 0.0
    assert duration_s(31, p, send_s=0.0) == pytest.approx(60.0)
    assert duration_s(100, p, send_s=0.0) == pytest.approx(180.0)
    assert duration_s(101, p, send_s=0.0) == pytest.approx(3600.0, abs=1e-3)  # the hourly pause
    # past the simulated span, the steady rate of its last hour
    assert duration_s(100 * 10, p, send_s=0.0) == pytest.approx(9 * 3600 + 180.0, rel=0.01)


def test_eta_sums_the_numbers_capacity_and_waits_for_the_window() -> None:
    p = PacingPolicy(steps=((1000, 1.0),), typing=False, per_minute=1000, per_hour=100_000)  # 1.5 s per send
    assert eta_s(0, 0, p) == 0.0
    assert eta_s(10, 0, p) is None
    # the first send of a quiet number waits for no gap: 0.5 s, then 1.5 s each
    assert eta_s(400, 1, p) == pytest.approx(0.5 + 399 * 1.5)
    assert eta_s(400, 4, p) == pytest.approx(0.5 + 99 * 1.5)
    assert eta_s(401, 4, p) == pytest.approx(0.5 + 100 * 1.5)  # the numbers share evenly, rounded up
    s = Schedule(start_at=1_000.0)
    assert eta_s(400, 4, p, s, now=400.0) == pytest.approx(600.0 + 0.5 + 99 * 1.5)


def test_render_fills_variables() -> None:
    assert render("Hi {{name}}, {{ code }}!{{missing}}", {"name": "Ana", "code": "X1"}) == "Hi Ana, X1!"
    assert render("{{name}}", {"name": "{{code}}", "code": "no"}) == "{{code}}"  # one pass: values are not templates
    assert render(None, {}) is None


def test_summarize_folds_held_cancelled_and_unfed() -> None:
    c = Campaign("cmp_1", "ws", "n", "running", 0.0, "text", {}, None, None, "bulk", total=10, cursor=6)
    counts = {"s1": {"queued": 1, "sending": 1, "sent": 2, "replied": 1}, "s2": {"read": 1},
              "~held": {"queued": 1}, "~cancelled": {"failed": 0}}
    totals, numbers = summarize(c, counts)
    assert totals == {"recipients": 10, "pending": 5, "queued": 2, "sent": 2, "delivered": 0, "read": 1,
                      "failed": 0, "replied": 1, "cancelled": 0}
    assert numbers["s1"] == {"queued": 2, "sent": 2, "delivered": 0, "read": 0, "failed": 0, "replied": 1,
                             "assigned": 4}
    c.status = "cancelled"
    totals, _ = summarize(c, {"~cancelled": {"failed": 2}})
    assert totals["cancelled"] == 6 and totals["pending"] == 0
