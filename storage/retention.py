"""Retention per data kind, per workspace, within the operator's bounds, and the sweep that enforces it.

A workspace's policy (`GET|PUT /v1/workspaces/{ws}/retention`) is days per kind: `events_days` (its
event stream), `messages_days` (its outbound message records), `audit_days` (its entries in the audit
stream), `media_days` (its stored media). Each is 1..the operator's bound (WA_RETENTION_MAX_EVENTS_DAYS,
_MESSAGES_DAYS, _AUDIT_DAYS, _MEDIA_DAYS; 30/90/365/30 by default); a workspace without a policy keeps
each kind for the bound. A stored value above a bound the operator lowered later is read as the bound.

The sweep (`RetentionSweep.run_once`) runs in the session supervisor, every WA_RETENTION_SWEEP_S (the one
detached actor that always runs; the work is Redis-only and cheap per pass):

* events: `XTRIM MINID` of each workspace stream at now - events_days (stream ids are times);
* messages: records (`wa:msg:*`, one SCAN per pass) whose `created_at` is older than messages_days, with
  their history (every record also expires 30 days after it was written, MESSAGE_TTL_S, whichever is first);
* media: metadata `wa:media:{ws}:*` whose `created_at` is older than media_days: metadata, expiry entry
  and file (the file on the supervisor's node: with several nodes and no shared data dir, the media
  store's own expiry sweep, WA_MEDIA_RETENTION_S, still deletes the others' files);
* audit: the whole stream is trimmed at the largest audit bound (`XTRIM MINID`); a workspace with fewer
  audit days loses its older entries one by one (XDEL), reading at most AUDIT_SCAN_MAX entries per pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from wa_ray.ids import is_valid_id
from wa_ray.runtime import RuntimeConfig
from wa_ray.storage import keys
from wa_ray.storage.key_scan import scan_batches, scan_names

DAY_S = 86_400
KINDS = ("events", "messages", "audit", "media")
DEFAULT_MAX_DAYS = (30, 90, 365, 30)  # events, messages, audit, media
AUDIT_SCAN_MAX = 50_000


@dataclass(frozen=True)
class RetentionPolicy:
    events_days: int
    messages_days: int
    audit_days: int
    media_days: int

    def days(self, kind: str) -> int:
        return int(getattr(self, f"{kind}_days"))


@dataclass(frozen=True)
class RetentionBounds:
    """The operator's maximum days per kind; also the policy of a workspace that set none."""

    events_days: int = DEFAULT_MAX_DAYS[0]
    messages_days: int = DEFAULT_MAX_DAYS[1]
    audit_days: int = DEFAULT_MAX_DAYS[2]
    media_days: int = DEFAULT_MAX_DAYS[3]

    @classmethod
    def of(cls, config: RuntimeConfig) -> RetentionBounds:
        return cls(*config.retention_max_days)

    def default(self) -> RetentionPolicy:
        return RetentionPolicy(**asdict(self))

    def clip(self, policy: RetentionPolicy) -> RetentionPolicy:
        return RetentionPolicy(*(max(1, min(policy.days(k), getattr(self, f"{k}_days"))) for k in KINDS))


class RetentionStore:
    def __init__(self, redis: aioredis.Redis, bounds: RetentionBounds) -> None:
        self._redis = redis
        self.bounds = bounds

    async def get(self, ws: str) -> RetentionPolicy:
        raw = await self._redis.get(keys.retention(ws))
        return self._parse(raw)

    async def set(self, ws: str, policy: RetentionPolicy) -> RetentionPolicy:
        """Stores the policy (the caller validated it against the bounds); returns it as it applies."""
        await self._redis.set(keys.retention(ws), orjson.dumps(asdict(policy)))
        return self.bounds.clip(policy)

    async def all(self, workspaces: Iterable[str]) -> dict[str, RetentionPolicy]:
        names = sorted(set(workspaces))
        raws = await self._redis.mget([keys.retention(ws) for ws in names]) if names else []
        return {ws: self._parse(raw) for ws, raw in zip(names, raws, strict=True)}

    def _parse(self, raw: str | bytes | None) -> RetentionPolicy:
        if not raw:
            return self.bounds.default()
        try:
            stored = orjson.loads(raw)
            policy = RetentionPolicy(*(int(stored.get(f"{k}_days", getattr(self.bounds, f"{k}_days")))
                                       for k in KINDS))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            return self.bounds.default()
        return self.bounds.clip(policy)


@dataclass
class SweepCounts:
    events: int = 0
    messages: int = 0
    media: int = 0
    audit: int = 0


class RetentionSweep:
    def __init__(self, redis: aioredis.Redis, bounds: RetentionBounds, media_dir: str | Path) -> None:
        self._redis = redis
        self._store = RetentionStore(redis, bounds)
        self._bounds = bounds
        self._media_dir = Path(media_dir)

    async def run_once(self, now: float | None = None) -> SweepCounts:
        now = time.time() if now is None else now
        counts = SweepCounts()
        streams = await scan_names(self._redis, keys.events("*"))
        workspaces = {s[len(keys.events("")):] for s in streams}
        workspaces |= {n[len(keys.retention("")):] for n in await scan_names(self._redis, keys.retention("*"))}
        workspaces = {ws for ws in workspaces if is_valid_id(ws)}
        policies = await self._store.all(workspaces)
        for ws, policy in policies.items():
            cutoff = _id_at(now - policy.events_days * DAY_S)
            counts.events += int(await self._redis.xtrim(keys.events(ws), minid=cutoff, approximate=False))
        counts.messages = await self._messages(now, policies)
        counts.media = await self._media(now, policies)
        counts.audit = await self._audit(now, policies)
        return counts

    def _policy(self, policies: dict[str, RetentionPolicy], ws: str | None) -> RetentionPolicy:
        return policies.get(ws or "") or self._bounds.default()

    async def _messages(self, now: float, policies: dict[str, RetentionPolicy]) -> int:
        prefix, deleted = keys.message(""), 0
        async for batch in scan_batches(self._redis, f"{prefix}*"):
            names = [n for n in batch if not n.endswith(":history")]
            if not names:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(name, "workspace_id", "created_at")
                rows = await pipe.execute()
            for name, (ws, created) in zip(names, rows, strict=True):
                try:
                    at = float(created)
                except (TypeError, ValueError):
                    continue
                if at < now - self._policy(policies, ws).messages_days * DAY_S:
                    mid = name[len(prefix):]
                    deleted += int(await self._redis.delete(keys.message(mid), keys.message_history(mid)) > 0)
        return deleted

    async def _media(self, now: float, policies: dict[str, RetentionPolicy]) -> int:
        deleted = 0
        async for batch in scan_batches(self._redis, keys.media("*", "*")):
            raws = await self._redis.mget(batch)
            for name, raw in zip(batch, raws, strict=True):
                parts = name.split(":")
                ws, media_id = (parts[2], parts[3]) if len(parts) == 4 else ("", "")
                if not (raw and is_valid_id(ws) and is_valid_id(media_id)):
                    continue
                try:
                    created = float(orjson.loads(raw)["created_at"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
                if created < now - self._policy(policies, ws).media_days * DAY_S:
                    await self._redis.delete(name)
                    await self._redis.zrem(keys.media_expiry(), f"{ws}/{media_id}")
                    (self._media_dir / ws / media_id).unlink(missing_ok=True)
                    deleted += 1
        return deleted

    async def _audit(self, now: float, policies: dict[str, RetentionPolicy]) -> int:
        stream = keys.audit()
        trimmed = int(await self._redis.xtrim(stream, minid=_id_at(now - self._bounds.audit_days * DAY_S),
                                                  approximate=False))
        shorter = {ws: p.audit_days for ws, p in policies.items() if p.audit_days < self._bounds.audit_days}
        if not shorter:
            return trimmed
        end = _id_at(now - min(shorter.values()) * DAY_S)
        start, read = "-", 0
        while read < AUDIT_SCAN_MAX:
            entries = await self._redis.xrange(stream, min=start, max=end, count=1000)
            doomed = []
            for entry_id, fields in entries:
                try:
                    ws = orjson.loads(fields["e"]).get("workspace_id")
                except (orjson.JSONDecodeError, KeyError, AttributeError):
                    continue
                if ws in shorter and int(entry_id.split("-")[0]) < (now - shorter[ws] * DAY_S) * 1000:
                    doomed.append(entry_id)
            if doomed:
                trimmed += int(await self._redis.xdel(stream, *doomed))
            read += len(entries)
            if len(entries) < 1000:
                break
            start = "(" + entries[-1][0]
        return trimmed


def _id_at(ts: float) -> str:
    """The first stream id at time `ts` (stream ids are milliseconds-sequence)."""
    return f"{max(0, int(ts * 1000))}-0"
