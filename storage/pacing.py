"""Send pacing: the per-session progressive-delay policy and the Cloud API rate buckets.

WhatsApp bans numbers that send like machines, so a Web session spaces its
sends the way the design's seed rule says: the more it has sent in the last
minute, the longer the gap before the next one (<=5/min none, >5 1 s, >10 2 s,
>15 3 s, >20 5 s), never more than 30 a minute, and at 1000 in an hour the
session pauses until the hour window has room again. A human also types, so
each send waits a typing delay proportional to the text, with jitter.

The windows live in Redis (one sorted set of send times per session), so a
restarted host or a session moved to another node keeps its history. Policy
overrides are per workspace; `enabled=False` (or the global `WA_PACING=false`)
switches all of it off for load tests, and then no Redis call is made at all.

The Cloud API side is Meta's documented limits: 80 msg/s per business number
and a per-recipient pair rate (a token bucket: bursts of 45, one token per 6 s).
Those buckets are in-process in the one cloud sender.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.config import RuntimeConfig

MINUTE, HOUR = 60.0, 3600.0
# (sends in the last minute, counting this one, up to which) -> gap in seconds before it
SEED_STEPS: tuple[tuple[int, float], ...] = ((5, 0.0), (10, 1.0), (15, 2.0), (20, 3.0))
SEED_ABOVE_S = 5.0
OVERRIDABLE = ("enabled", "steps", "above_s", "per_minute", "per_hour", "typing", "typing_per_char_s",
               "typing_min_s", "typing_max_s", "typing_jitter")
# What an override may be: every number finite and inside these bounds. PUT /pacing refuses anything
# else (serve_app/message_models.py uses these), and a stored value outside them is dropped on read,
# so neither GET nor a sender ever meets a NaN, an infinity or a 2^80.
BOOLS = frozenset({"enabled", "typing"})
INT_LIMITS: dict[str, tuple[int, int]] = {"per_minute": (1, 10_000), "per_hour": (1, 1_000_000)}
FLOAT_LIMITS: dict[str, tuple[float, float]] = {"above_s": (0.0, 600.0), "typing_per_char_s": (0.0, 5.0),
                                               "typing_min_s": (0.0, 60.0), "typing_max_s": (0.0, 60.0),
                                               "typing_jitter": (0.0, 1.0)}
STEP_RATE_LIMITS: tuple[int, int] = (1, 10_000)  # sends a minute up to which a step applies
STEP_GAP_LIMITS: tuple[float, float] = (0.0, 600.0)  # its gap in seconds
MAX_STEPS = 20


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _float_in(value: Any, bounds: tuple[float, float]) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and bounds[0] <= value <= bounds[1])


def _valid(name: str, value: Any) -> bool:
    if name in BOOLS:
        return isinstance(value, bool)
    if name in INT_LIMITS:
        return _int_in(value, INT_LIMITS[name])
    if name in FLOAT_LIMITS:
        return _float_in(value, FLOAT_LIMITS[name])
    if name == "steps":
        return (isinstance(value, list | tuple) and len(value) <= MAX_STEPS
                and all(isinstance(s, list | tuple) and len(s) == 2 and _int_in(s[0], STEP_RATE_LIMITS)
                        and _float_in(s[1], STEP_GAP_LIMITS) for s in value))
    return False


def clean_overrides(raw: Any) -> dict[str, Any]:
    """The valid overrides in `raw` (anything: it may come from Redis); each invalid field is dropped."""
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if k in OVERRIDABLE and v is not None and _valid(k, v)}


@dataclass(frozen=True)
class PacingPolicy:
    enabled: bool = True
    steps: tuple[tuple[int, float], ...] = SEED_STEPS
    above_s: float = SEED_ABOVE_S
    per_minute: int = 30
    per_hour: int = 1000
    typing: bool = True
    typing_per_char_s: float = 0.03
    typing_min_s: float = 0.2
    typing_max_s: float = 3.0
    typing_jitter: float = 0.25  # +-25%

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> PacingPolicy:
        """The service-wide default (WA_PACING, WA_PACING_PER_MINUTE, ...), before workspace overrides."""
        return cls(enabled=config.pacing, per_minute=config.pacing_per_minute, per_hour=config.pacing_per_hour,
                   typing=config.typing_delay)

    def gap_s(self, sent_last_minute: int) -> float:
        """The progressive delay for the next send, given how many went out in the last minute."""
        rate = sent_last_minute + 1
        for upto, gap in self.steps:
            if rate <= upto:
                return gap
        return self.above_s

    def typing_s(self, length: int, rng: random.Random | None = None) -> float:
        if not self.typing:
            return 0.0
        base = min(self.typing_max_s, self.typing_min_s + length * self.typing_per_char_s)
        return base * (rng or random).uniform(1 - self.typing_jitter, 1 + self.typing_jitter)

    def with_overrides(self, overrides: dict[str, Any]) -> PacingPolicy:
        clean = clean_overrides(overrides)
        if "steps" in clean:
            clean["steps"] = tuple((int(n), float(s)) for n, s in clean["steps"])
        return replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """What the pacing decision needs from a session's send log."""

    now: float
    last_minute: list[float] = field(default_factory=list)  # send times within 60 s, oldest first
    hour_count: int = 0
    hour_oldest: float | None = None


@dataclass(frozen=True)
class PaceDecision:
    wait_s: float  # wait this long, then send
    paused_until: float | None = None  # the hourly cap is reached: no send before this time
    reason: str = ""


def decide(policy: PacingPolicy, w: Window) -> PaceDecision:
    """Pure: when may the next message of this session go out?"""
    if not policy.enabled:
        return PaceDecision(0.0)
    if w.hour_count >= policy.per_hour and w.hour_oldest is not None:
        return PaceDecision(0.0, w.hour_oldest + HOUR, "hourly_cap")
    n = len(w.last_minute)
    wait = 0.0
    if n >= policy.per_minute:
        # the minute cap: wait until enough of the window has aged out
        wait = w.last_minute[n - policy.per_minute] + MINUTE - w.now
        reason = "minute_cap"
    else:
        reason = "progressive"
    if n:
        wait = max(wait, w.last_minute[-1] + policy.gap_s(n) - w.now)
    return PaceDecision(max(0.0, wait), None, reason if wait > 0 else "")


class PacingStore:
    """Per-session send logs and per-workspace policy overrides in Redis."""

    def __init__(self, redis: aioredis.Redis, default: PacingPolicy, cache_ttl_s: float = 5.0) -> None:
        self._redis = redis
        self._default = default
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, PacingPolicy]] = {}

    async def policy(self, ws: str) -> PacingPolicy:
        hit = self._cache.get(ws)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        policy = self._default.with_overrides(await self.overrides(ws))
        self._cache[ws] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set_overrides(self, ws: str, overrides: dict[str, Any]) -> PacingPolicy:
        clean = clean_overrides(overrides)
        await self._redis.set(keys.pacing(ws), orjson.dumps(clean))
        self._cache.pop(ws, None)
        return self._default.with_overrides(clean)

    async def overrides(self, ws: str) -> dict[str, Any]:
        """The stored overrides that are valid; a stored value that is not (or JSON that is not) is ignored."""
        raw = await self._redis.get(keys.pacing(ws))
        if not raw:
            return {}
        try:
            return clean_overrides(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return {}

    async def window(self, ws: str, sid: str) -> Window:
        now = time.time()
        key = keys.pace_log(ws, sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - HOUR)
            pipe.zrangebyscore(key, now - MINUTE, "+inf", withscores=True)
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
            _, minute, count, oldest = await pipe.execute()
        return Window(now, [score for _, score in minute], int(count), oldest[0][1] if oldest else None)

    async def record(self, ws: str, sid: str, message_id: str, at: float | None = None) -> None:
        key = keys.pace_log(ws, sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {message_id: at or time.time()})
            pipe.expire(key, int(HOUR) + 60)
            await pipe.execute()


@dataclass
class TokenBucket:
    """Capacity `burst`, one token every `refill_s`; `take` returns how long to wait for a token."""

    burst: float
    refill_s: float
    tokens: float | None = None  # None: untouched, full
    stamp: float = 0.0

    def take(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self.tokens is None:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.refill_s)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        wait = (1 - self.tokens) * self.refill_s
        self.tokens -= 1  # reserved: the caller sends after `wait`
        return wait

    def drain(self, now: float | None = None) -> None:
        """The server said the bucket is empty (131056): trust it over our own count."""
        now = time.monotonic() if now is None else now
        self.tokens, self.stamp = 0.0, now


@dataclass
class SlidingWindow:
    """At most `limit` events in any `span_s`; `take` returns how long to wait (Meta's 80 msg/s per number
    is a sliding one-second window, which a token bucket of the same rate would overshoot after a burst)."""

    limit: int
    span_s: float = 1.0
    times: list[float] = field(default_factory=list)

    def take(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        cutoff = now - self.span_s
        while self.times and self.times[0] <= cutoff:
            self.times.pop(0)
        at = now
        if len(self.times) >= self.limit:
            at = self.times[len(self.times) - self.limit] + self.span_s
        self.times.append(at)
        return at - now
