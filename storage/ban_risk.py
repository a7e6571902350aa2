"""Ban risk per number: the workspace's policy, the score (pure), and the evaluation the sender runs.

WhatsApp bans a number for how it behaves, not for one message, so the score weighs what its heuristics
are known to watch, each factor bounded by its weight (the weights sum to 100, so the score is 0..100):

* `send_rate` (25): sends in the last hour against the pacing policy's `per_hour`;
* `new_contacts` (30): first contacts in the rolling 24 h against the policy's `daily_new_contacts`;
* `failed` (15): the day's failed sends against all its finished sends, full at FAILED_FULL (25 %);
* `refused` (15): the day's refused sends (ack -1: blocked, or not on WhatsApp), full at REFUSED_FULL (10 %);
* `few_replies` (15): the day's replies against the rolling day's new contacts; no replies is the full
  weight, REPLIES_ENOUGH (30 %) or more is none. Below MIN_REPLY_SAMPLE new contacts it counts nothing
  (three strangers who have not answered yet say little).

The policy (`GET|PUT /v1/workspaces/{ws}/ban-risk`): `daily_new_contacts` caps the first contacts a
number makes in a rolling 24 h (the sender holds a message to a new contact at the cap); each `warn_at`
value crossed upwards publishes `session.ban_risk` once (again only after the score fell below it); at
`pause_at` (null: never) the number is paused until an operator resumes it, and a resume suppresses the
automatic pauses (ban risk and the daily cap) for `resume_cooldown_s`.

Invariants: the score never leaves 0..100; a stored policy value outside the bounds is dropped on read
(the default's is used); the last evaluation is stored under keys.risk for the stats, console and metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys, tallies
from wa_ray.storage.contact_log import DAY_S, DEFAULT_DAILY_NEW_CONTACTS
from wa_ray.storage.pacing import HOUR

WEIGHTS: dict[str, float] = {"send_rate": 25.0, "new_contacts": 30.0, "failed": 15.0, "refused": 15.0,
                             "few_replies": 15.0}
FAILED_FULL = 0.25
REFUSED_FULL = 0.10
REPLIES_ENOUGH = 0.30
MIN_REPLY_SAMPLE = 3

DAILY_NEW_CONTACTS_LIMITS = (1, 100_000)
THRESHOLD_LIMITS = (1, 100)
MAX_WARN_AT = 5
COOLDOWN_LIMITS = (0, 7 * 24 * 3600)
PAUSE_KEEP_S = 30 * 24 * 3600  # a ban-risk pause nobody resumed is forgotten after this long
RISK_KEEP_S = 7 * 24 * 3600


@dataclass(frozen=True)
class BanRiskPolicy:
    enabled: bool = True
    daily_new_contacts: int = DEFAULT_DAILY_NEW_CONTACTS
    warn_at: tuple[int, ...] = (70, 90)
    pause_at: int | None = 90
    resume_cooldown_s: int = 3600

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warn_at"] = list(self.warn_at)
        return out


def _int_in(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def policy_from(raw: Any) -> BanRiskPolicy:
    """The policy `raw` describes (anything: it comes from Redis); each invalid field is the default's."""
    default = BanRiskPolicy()
    if not isinstance(raw, dict):
        return default
    warn = raw.get("warn_at")
    warn_ok = isinstance(warn, list) and len(warn) <= MAX_WARN_AT and all(_int_in(t, THRESHOLD_LIMITS) for t in warn)
    pause = raw.get("pause_at", default.pause_at)

    def bounded(name: str, bounds: tuple[int, int]) -> int:
        value = raw.get(name)
        return value if _int_in(value, bounds) else getattr(default, name)

    return BanRiskPolicy(
        enabled=raw["enabled"] if isinstance(raw.get("enabled"), bool) else default.enabled,
        daily_new_contacts=bounded("daily_new_contacts", DAILY_NEW_CONTACTS_LIMITS),
        warn_at=tuple(sorted(set(warn))) if warn_ok else default.warn_at,
        pause_at=pause if pause is None or _int_in(pause, THRESHOLD_LIMITS) else default.pause_at,
        resume_cooldown_s=bounded("resume_cooldown_s", COOLDOWN_LIMITS))


# ------------------------------------------------------------------ the score (pure)
@dataclass(frozen=True)
class RiskInputs:
    """What one number did, as the score reads it."""

    sent_hour: int = 0
    per_hour: int = 1000
    new_contacts: int = 0  # first contacts in the rolling 24 h
    daily_new_contacts: int = DEFAULT_DAILY_NEW_CONTACTS
    sent_day: int = 0
    failed_day: int = 0
    refused_day: int = 0
    replies_day: int = 0


@dataclass(frozen=True)
class Risk:
    score: float
    level: str  # "ok" | "warning" | "critical"
    factors: dict[str, float] = field(default_factory=dict)  # factor -> points it added (0..its weight)

    def to_dict(self, at: float) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "factors": self.factors, "at": at}


def _ratio(part: float, whole: float) -> float:
    return 0.0 if whole <= 0 else max(0.0, min(1.0, part / whole))


def factors_of(i: RiskInputs) -> dict[str, float]:
    """Each factor's share of its weight, 0..1."""
    finished = i.sent_day + i.failed_day
    replies = (1.0 - _ratio(_ratio(i.replies_day, i.new_contacts), REPLIES_ENOUGH)
               if i.new_contacts >= MIN_REPLY_SAMPLE else 0.0)
    return {"send_rate": _ratio(i.sent_hour, i.per_hour),
            "new_contacts": _ratio(i.new_contacts, i.daily_new_contacts),
            "failed": _ratio(_ratio(i.failed_day, finished), FAILED_FULL),
            "refused": _ratio(_ratio(i.refused_day, finished), REFUSED_FULL),
            "few_replies": replies}


def level_of(score: float, policy: BanRiskPolicy) -> str:
    if policy.pause_at is not None and score >= policy.pause_at:
        return "critical"
    if policy.warn_at and score >= min(policy.warn_at):
        return "critical" if score >= max(policy.warn_at) and len(policy.warn_at) > 1 else "warning"
    return "ok"


def score(i: RiskInputs, policy: BanRiskPolicy) -> Risk:
    """Pure: the number's ban-risk score 0..100, its level under `policy`, and each factor's points."""
    points = {name: round(WEIGHTS[name] * share, 2) for name, share in factors_of(i).items()}
    total = round(min(100.0, max(0.0, math.fsum(points.values()))), 2)
    return Risk(total, level_of(total, policy), points)


def threshold_level(threshold: int, policy: BanRiskPolicy) -> str:
    """The level a crossing of `threshold` reports: critical for the top warning or the pause threshold."""
    top = max(policy.warn_at) if policy.warn_at else threshold
    critical = threshold >= top and len(policy.warn_at) > 1
    return "critical" if critical or (policy.pause_at is not None and threshold >= policy.pause_at) else "warning"


# ------------------------------------------------------------------ Redis
class BanRiskStore:
    """Per-workspace policies (read through a short in-process cache) and per-number evaluations."""

    def __init__(self, redis: aioredis.Redis, cache_ttl_s: float = 5.0) -> None:
        self._redis = redis
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, BanRiskPolicy]] = {}

    async def policy(self, ws: str) -> BanRiskPolicy:
        hit = self._cache.get(ws)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        raw = await self._redis.get(keys.ban_risk_policy(ws))
        try:
            policy = policy_from(orjson.loads(raw)) if raw else BanRiskPolicy()
        except orjson.JSONDecodeError:
            policy = BanRiskPolicy()
        self._cache[ws] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set_policy(self, ws: str, policy: BanRiskPolicy) -> BanRiskPolicy:
        clean = policy_from(policy.to_dict())
        await self._redis.set(keys.ban_risk_policy(ws), orjson.dumps(clean.to_dict()))
        self._cache.pop(ws, None)
        return clean

    async def inputs(self, ws: str, sid: str, per_hour: int, daily_new_contacts: int,
                     now: float | None = None) -> RiskInputs:
        """One pipeline: the send log's hour, the rolling day's new contacts, the UTC day's tallies."""
        now = time.time() if now is None else now
        day_key, prefix = keys.session_day_stats(ws, tallies.day_of(now)), f"{sid}|"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys.pace_log(ws, sid), now - HOUR, "+inf")
            pipe.zcount(keys.contacts(ws, sid), now - DAY_S, "+inf")
            pipe.hmget(day_key, [prefix + m for m in ("sent", "failed", "refused", "replies")])
            hour, new, day = await pipe.execute()
        sent, failed, refused, replies = (int(float(v or 0)) for v in day)
        return RiskInputs(int(hour), per_hour, int(new), daily_new_contacts, sent, failed, refused, replies)

    async def evaluate(self, ws: str, sid: str, policy: BanRiskPolicy, inputs: RiskInputs,
                       now: float | None = None) -> Evaluation:
        """Score the number, store it, and say which thresholds it crossed upwards since the last time
        (SADD: each crossing is reported by one evaluation only) and whether it is newly paused."""
        now = time.time() if now is None else now
        risk = score(inputs, policy)
        above_key = keys.risk_above(ws, sid)
        below = [t for t in policy.warn_at if risk.score < t]
        above = [t for t in policy.warn_at if risk.score >= t]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.risk(ws, sid), orjson.dumps(risk.to_dict(now)), ex=RISK_KEEP_S)
            for t in above:
                pipe.sadd(above_key, str(t))
            if below:
                pipe.srem(above_key, *[str(t) for t in below])
            pipe.expire(above_key, RISK_KEEP_S)
            replies = await pipe.execute()
        crossed = [t for t, added in zip(above, replies[1:1 + len(above)], strict=True) if int(added)]
        paused = False
        if policy.pause_at is not None and risk.score >= policy.pause_at \
                and not await self._redis.exists(keys.risk_cooldown(ws, sid)):
            paused = bool(await self._redis.set(keys.risk_paused(ws, sid), repr(now), nx=True, ex=PAUSE_KEEP_S))
        return Evaluation(risk, crossed, paused)

    async def is_paused(self, ws: str, sid: str) -> bool:
        return bool(await self._redis.exists(keys.risk_paused(ws, sid)))

    async def in_cooldown(self, ws: str, sid: str) -> bool:
        return bool(await self._redis.exists(keys.risk_cooldown(ws, sid)))

    async def resume(self, ws: str, sid: str, cooldown_s: int) -> str | None:
        """An operator lifts the number's automatic pause (ban risk or the daily cap) and suppresses it
        for `cooldown_s`. Returns the reason of the pause it ended (the paused marker's), else None."""
        marker = keys.session_paused(ws, sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(marker)
            pipe.delete(keys.risk_paused(ws, sid))
            if cooldown_s > 0:
                pipe.set(keys.risk_cooldown(ws, sid), "1", ex=cooldown_s)
            held, risk_paused, *_ = await pipe.execute()
        reason = (held or "").partition("|")[0]
        if reason in OPERATOR_RESUMABLE:
            # only a pause of ours: the hourly cap's marker is the pacing's and ends by itself
            await self._redis.eval(_DEL_IF, 1, marker, held)
            return reason
        return "ban_risk" if int(risk_paused) else None


OPERATOR_RESUMABLE = ("ban_risk", "daily_contacts_cap")
_DEL_IF = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Evaluation:
    risk: Risk
    crossed: list[int]  # warning thresholds crossed upwards by this evaluation
    paused: bool  # this evaluation paused the number (it was not paused before)


async def risk_of(redis: aioredis.Redis, ws: str, sid: str) -> dict[str, Any] | None:
    """The number's last evaluation `{score, level, factors, at}`, or None when it was never evaluated."""
    raw = await redis.get(keys.risk(ws, sid))
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
