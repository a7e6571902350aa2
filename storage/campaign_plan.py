"""Pure campaign arithmetic: the schedule window and the ETA from the numbers' pacing capacity.

Schedule: a campaign starts at `start_at` (epoch seconds) and sends only between `daily_hours` `from` and
`to` (local wall-clock `HH:MM` in `time_zone`, an IANA name read with zoneinfo, so daylight saving is the
zone's own). `from` < `to` is a daytime window; `from` > `to` wraps past midnight (22:00-06:00); no
daily hours means all day.

ETA: a number paced by `PacingPolicy` sends, in one minute starting from a quiet window, messages spaced
by the progressive gap for the count already sent that minute plus the typing delay plus `send_s` (the
page send itself), until the minute is over or `per_minute` is reached; its hourly rate is that times 60,
capped by `per_hour`. The campaign's rate is the sum over the numbers that can take messages; the ETA is
the messages still to send divided by it, plus the time until the window opens when it is closed (a
window shorter than the remaining work is not modelled day by day). Unpaced, a number sends one message
per `send_s`. The bench compares a real run against this number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from wa_ray.storage.pacing import PacingPolicy

SEND_S = 0.5  # the page's own time for one send (intent, evaluate, the server's ack), measured on the simulator
MINUTE_S = 60.0


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


def per_hour(policy: PacingPolicy, send_s: float = SEND_S, length: int = 0) -> float:
    """Messages one number sends in an hour of steady work under `policy` (module docstring); `length`: the
    text's length, for the typing delay (its jitter averages out)."""
    if not policy.enabled:
        return 3600.0 / send_s
    typing = min(policy.typing_max_s, policy.typing_min_s + length * policy.typing_per_char_s) if policy.typing else 0.0
    t, n = 0.0, 0
    while n < policy.per_minute:
        step = policy.gap_s(n) + typing + send_s
        if n and t + step > MINUTE_S:
            break
        t += step
        n += 1
    minute_rate = n * (MINUTE_S / max(t, MINUTE_S)) if t > MINUTE_S else n
    return float(min(minute_rate * 60, policy.per_hour))


def eta_s(remaining: int, numbers: int, policy: PacingPolicy, schedule: Schedule | None = None,
          now: float = 0.0, send_s: float = SEND_S, length: int = 0) -> float | None:
    """Seconds until `remaining` messages are sent by `numbers` numbers; None when no number can send."""
    if remaining <= 0:
        return 0.0
    if numbers <= 0:
        return None
    wait = (schedule.next_open(now) - now) if schedule else 0.0
    return max(0.0, wait) + remaining / (numbers * per_hour(policy, send_s, length) / 3600.0)
