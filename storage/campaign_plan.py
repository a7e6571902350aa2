"""Pure campaign arithmetic: the schedule window and the ETA from the numbers' pacing capacity.

Schedule: a campaign starts at `start_at` (epoch seconds) and sends only between `daily_hours` `from` and
`to` (local wall-clock `HH:MM` in `time_zone`, an IANA name read with zoneinfo, so daylight saving is the
zone's own). `from` < `to` is a daytime window; `from` > `to` wraps past midnight (22:00-06:00); no
daily hours means all day.

ETA: each number is a sender paced by `PacingPolicy`, replayed message by message on the same `decide`
the senders use (its progressive gap for the sends of the last minute, the minute cap, the hourly pause),
each message also taking the mean typing delay and `send_s` (the page send itself, whose completion is
what the pacing log records). The remaining messages are shared evenly over the numbers that can take
them, so the ETA is one number's time for its share, plus the time until the window opens when it is
closed (a window shorter than the remaining work is not modelled day by day). Unpaced, a number sends
one message per `send_s`. The bench compares a real run against this number, with `send_s=0` for what
the pacing alone allows.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from wa_ray.storage.pacing import HOUR, PacingPolicy, Window, decide

SEND_S = 0.5  # the page's own time for one send (intent, evaluate, the server's ack), measured on the simulator
MINUTE_S = 60.0
SIMULATED_S = 2 * HOUR  # one number's sends replayed this far; beyond, at the rate of the second hour


@dataclass(frozen=True)
class Schedule:
    start_at: float | None = None
    start_hm: tuple[int, int] | None = None  # daily window start (hour, minute), local
    end_hm: tuple[int, int] | None = None
    time_zone: str = "UTC"

    def is_open(self, now: float) -> bool:
        return self.next_open(now) <= now

    def next_open(self, now: float) -> float:
        """The first instant at or after `now` at which the campaign may send."""
        at = max(now, self.start_at or now)
        if self.start_hm is None or self.end_hm is None or self.start_hm == self.end_hm:
            return at
        zone = ZoneInfo(self.time_zone)
        local = dt.datetime.fromtimestamp(at, zone)
        if self._inside(local):
            return at
        for days in range(0, 3):  # the next window start today or in the next days (wall clock, DST-aware)
            day = (local + dt.timedelta(days=days)).date()
            start = dt.datetime(day.year, day.month, day.day, *self.start_hm, tzinfo=zone).timestamp()
            if start >= at:
                return start
        return at  # unreachable for a valid window

    def _inside(self, local: dt.datetime) -> bool:
        hm = (local.hour, local.minute)
        assert self.start_hm is not None and self.end_hm is not None
        if self.start_hm < self.end_hm:
            return self.start_hm <= hm < self.end_hm
        return hm >= self.start_hm or hm < self.end_hm  # wraps past midnight


def parse_hm(value: str) -> tuple[int, int]:
    """`HH:MM` (24 h) -> (hour, minute); ValueError otherwise."""
    hour, sep, minute = value.partition(":")
    if not (sep and len(hour) == 2 and len(minute) == 2 and hour.isdigit() and minute.isdigit()):
        raise ValueError("expected HH:MM")
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise ValueError("expected HH:MM")
    return h, m


def _typing_s(policy: PacingPolicy, length: int) -> float:
    """The mean typing delay for a text of `length` (its jitter averages out)."""
    if not policy.typing:
        return 0.0
    return min(policy.typing_max_s, policy.typing_min_s + length * policy.typing_per_char_s)


@functools.lru_cache(maxsize=64)
def _send_times(policy: PacingPolicy, send_s: float, typing_s: float) -> tuple[float, ...]:
    """When each send of one busy number completes, from a quiet start, over SIMULATED_S: the sender's own
    loop (actors/outbound.py `_pace`) replayed on `decide`, so the ETA and the bench's ideal follow the
    same rules as the senders (the progressive gaps, the minute cap, the hourly pause, typing, the send)."""
    times: list[float] = []
    t = 0.0
    minute: collections.deque[float] = collections.deque()
    hour: collections.deque[float] = collections.deque()
    while t < SIMULATED_S:
        while minute and minute[0] <= t - MINUTE_S:
            minute.popleft()
        while hour and hour[0] <= t - HOUR:
            hour.popleft()
        decision = decide(policy, Window(t, list(minute), len(hour), hour[0] if hour else None))
        if decision.paused_until is not None:
            t = max(t, decision.paused_until) + 1e-6  # past it: float sums may land a hair before the boundary
            continue
        t += decision.wait_s + typing_s + send_s
        times.append(t)
        minute.append(t)
        hour.append(t)
    return tuple(times)


def duration_s(count: int, policy: PacingPolicy, send_s: float = SEND_S, length: int = 0) -> float:
    """Seconds one number needs for `count` messages from a quiet start under `policy`; past the simulated
    span, at the rate of its last hour (the steady state)."""
    if count <= 0:
        return 0.0
    if not policy.enabled:
        return count * send_s
    times = _send_times(policy, send_s, _typing_s(policy, length))
    if count <= len(times):
        return times[count - 1]
    last_hour = sum(1 for t in times if t > SIMULATED_S - HOUR)
    return times[-1] + (count - len(times)) * HOUR / max(1, last_hour)


def per_hour(policy: PacingPolicy, send_s: float = SEND_S, length: int = 0) -> float:
    """Messages one number sends in its first hour of steady work under `policy` (module docstring)."""
    if not policy.enabled:
        return 3600.0 / send_s
    return float(sum(1 for t in _send_times(policy, send_s, _typing_s(policy, length)) if t <= HOUR))


def eta_s(remaining: int, numbers: int, policy: PacingPolicy, schedule: Schedule | None = None,
          now: float = 0.0, send_s: float = SEND_S, length: int = 0) -> float | None:
    """Seconds until `remaining` messages are sent by `numbers` numbers sharing them evenly; None when no
    number can send."""
    if remaining <= 0:
        return 0.0
    if numbers <= 0:
        return None
    wait = (schedule.next_open(now) - now) if schedule else 0.0
    return max(0.0, wait) + duration_s(math.ceil(remaining / numbers), policy, send_s, length)
