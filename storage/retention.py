"""Retention per data kind, per workspace, within the operator's bounds, and the sweep that enforces it.

A workspace's policy (`GET|PUT /v1/workspaces/{ws}/retention`) is days per kind: `events_days` (its
event stream), `messages_days` (its outbound message records), `audit_days` (its entries in the audit
stream), `media_days` (its stored media). Each is 1..the operator's bound (WA_RETENTION_MAX_EVENTS_DAYS,
_MESSAGES_DAYS, _AUDIT_DAYS, _MEDIA_DAYS; 30/90/365/30 by default); a workspace without a policy keeps
each kind for the bound. A stored value above a bound the operator lowered later is read as the bound.

The sweep (`RetentionSweep.run_once`) runs in the session supervisor, every WA_RETENTION_SWEEP_S (the one
detached actor that always runs; the work is Redis-only and cheap per pass):

* events: `XTRIM MINID` of each workspace stream at now - events_days (stream ids are times). The
  workspaces are those of the registry sets (every workspace that has or had a session, a provider
  config, Cloud API credentials or a webhook: nothing else publishes events) and those with a stored
  policy (`wa:{ws}:retention`, one SCAN);
* messages: records (`wa:{ws}:msg:<id>`, one SCAN of `wa:{*}:msg:*` per pass, whatever the number of
  workspaces) whose `created_at` is older than their workspace's messages_days, with their history (every
  record also expires 30 days after it was written, MESSAGE_TTL_S, whichever is first);
* media: metadata `wa:{ws}:media:<id>` (one SCAN per pass likewise) whose `created_at` is older than
  media_days: metadata, expiry entry and file (the file on the supervisor's node: with several nodes and
  no shared data dir, the media store's own expiry sweep, WA_MEDIA_RETENTION_S, still deletes the
  others' files);
* audit: the whole stream is trimmed at the largest audit bound (`XTRIM MINID`); a workspace with fewer
  audit days loses its older entries one by one (XDEL), reading at most AUDIT_SCAN_MAX entries per pass.

Each key's workspace is read from its name (`wa:{ws}:...`). On a Redis Cluster the names of one SCAN lie in
many slots, so they are read one command per key in a non-transactional pipeline (the client sends each to
its node), never with one MGET; every DEL names keys of one workspace only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from wa_ray.ids import is_valid_id
from wa_ray.runtime import RuntimeConfig
from wa_ray.storage import keys
from wa_ray.storage.key_scan import scan_batches, scan_names
from wa_ray.storage.redis_client import RedisClient

DAY_S = 86_400
KINDS = ("events", "messages", "audit", "media")
DEFAULT_MAX_DAYS = (30, 90, 365, 30)  # events, messages, audit, media
AUDIT_SCAN_MAX = 50_000
# the global sets that list workspaces (each written before the workspace's own keys; a stale member is harmless)
REGISTRIES = (keys.workspaces(), keys.provider_workspaces(), keys.cloud_workspaces(), keys.webhook_workspaces())


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
    def __init__(self, redis: RedisClient, bounds: RetentionBounds) -> None:
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
        if not names:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot per workspace: no MGET
            for ws in names:
                pipe.get(keys.retention(ws))
            raws = await pipe.execute()
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
    def __init__(self, redis: RedisClient, bounds: RetentionBounds, media_dir: str | Path) -> None:
        self._redis = redis
        self._store = RetentionStore(redis, bounds)
        self._bounds = bounds
        self._media_dir = Path(media_dir)

    async def run_once(self, now: float | None = None) -> SweepCounts:
        now = time.time() if now is None else now
        counts = SweepCounts()
        policies = await self._store.all(await self._workspaces())
        for ws, policy in policies.items():
            cutoff = _id_at(now - policy.events_days * DAY_S)
            counts.events += int(await self._redis.xtrim(keys.events(ws), minid=cutoff, approximate=False))
        counts.messages = await self._messages(now, policies)
        counts.media = await self._media(now, policies)
        counts.audit = await self._audit(now, policies)
        return counts

    async def _workspaces(self) -> set[str]:
        """Every workspace of the registry sets, and every one with a stored policy."""
        async with self._redis.pipeline(transaction=False) as pipe:  # four global sets: four commands
            for name in REGISTRIES:
                pipe.smembers(name)
            found: set[str] = set().union(*await pipe.execute())
        for name in await scan_names(self._redis, keys.retention("*")):
            owner = _workspace_key(name)
            if owner is not None and name == keys.retention(owner[0]):
                found.add(owner[0])
        return {ws for ws in found if is_valid_id(ws)}

    def _policy(self, policies: dict[str, RetentionPolicy], ws: str) -> RetentionPolicy:
        return policies.get(ws) or self._bounds.default()

    async def _messages(self, now: float, policies: dict[str, RetentionPolicy]) -> int:
        deleted = 0
        async for batch in scan_batches(self._redis, keys.message("*", "*")):
            found = list(_named(batch, keys.message))
            if not found:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for ws, mid in found:
                    pipe.hget(keys.message(ws, mid), "created_at")
                created = await pipe.execute()
            for (ws, mid), at in zip(found, created, strict=True):
                try:
                    due = float(at) < now - self._policy(policies, ws).messages_days * DAY_S
                except (TypeError, ValueError):
                    continue
                if due:
                    deleted += int(await self._redis.delete(keys.message(ws, mid), keys.message_history(ws, mid)) > 0)
        return deleted

    async def _media(self, now: float, policies: dict[str, RetentionPolicy]) -> int:
        deleted = 0
        async for batch in scan_batches(self._redis, keys.media("*", "*")):
            found = list(_named(batch, keys.media))
            if not found:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for ws, media_id in found:
                    pipe.get(keys.media(ws, media_id))
                raws = await pipe.execute()
            for (ws, media_id), raw in zip(found, raws, strict=True):
                name = keys.media(ws, media_id)
                if not raw:
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


def _workspace_key(name: str) -> tuple[str, str] | None:
    """(workspace, the rest of the name) of a key of a workspace with a valid id, `wa:{<ws>}:<rest>`; None for
    any other."""
    ws = keys.workspace_of(name)
    if ws is None or not is_valid_id(ws):
        return None
    return ws, name.removeprefix(keys.workspace_prefix(ws))


def _named(names: Iterable[str], key: Callable[[str, str], str]) -> Iterator[tuple[str, str]]:
    """(ws, id) of each name that `key(ws, id)` gives exactly, with both valid ids: what a SCAN of
    `key("*", "*")` matched, read back from the names."""
    for name in names:
        owner = _workspace_key(name)
        if owner is None:
            continue
        head = key(owner[0], "")
        if name.startswith(head) and is_valid_id(item := name[len(head):]):
            yield owner[0], item


def _id_at(ts: float) -> str:
    """The first stream id at time `ts` (stream ids are milliseconds-sequence)."""
    return f"{max(0, int(ts * 1000))}-0"
