"""Metrics derived from what Redis holds, so every replica reports the same numbers.

Two kinds:

* Gauges read at scrape time: sessions by state (the registry), queue depth by
  priority (each session's priority streams and each Cloud API workspace's:
  entries not yet read by the sender group plus entries read but not
  acknowledged), webhook dead letters and pending deliveries.
* Counters and histograms folded from the event streams: messages by status
  and provider (`message.queued/sent/ack/failed`), QR generation seconds (a
  session's `session.status` -> `initializing` to its first `session.qr`),
  send latency seconds (the message's `created_at` at accept to its
  `message.sent` event), page send seconds (`message.sent`'s `send_ms`). The
  fold keeps a cursor per workspace and applies each batch of increments in
  one MULTI guarded by WATCH on the cursors, so concurrent scrapes from several
  replicas never count an event twice (the cursors, counters and histograms
  share one slot of a Redis Cluster, `{g:metrics}`). Events trimmed from a
  stream before any scrape folded them are not counted (streams keep ~100k
  events each).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError, ResponseError, WatchError

from wa_ray.states import SessionState
from wa_ray.storage import keys
from wa_ray.storage.redis_client import RedisClient

log = logging.getLogger(__name__)

QR_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
HISTOGRAMS: dict[str, tuple[float, ...]] = {
    "qr_generation_seconds": QR_BUCKETS,
    "send_latency_seconds": LATENCY_BUCKETS,
    "page_send_seconds": LATENCY_BUCKETS,
}
FOLD_BATCH = 1000
FOLD_MAX_PER_WORKSPACE = 50_000  # per scrape; the rest is folded by the next one
QUEUE_SCAN_CAP = 10_000  # unread entries counted per queue stream before reporting ">= cap"
MESSAGE_EVENTS = {"message.queued": "queued", "message.sent": "sent", "message.failed": "failed"}


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int]  # per bucket, not cumulative; last is +Inf
    sum: float = 0.0
    count: int = 0

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for le, n in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += n
            out.append((le, running))
        return out


@dataclass
class Snapshot:
    sessions: dict[str, int]
    queue_waiting: dict[str, int]
    queue_pending: dict[str, int]
    messages: dict[tuple[str, str], int]  # (status, provider) -> count
    received: dict[str, int]  # provider -> count
    events: dict[str, int]  # type -> count
    histograms: dict[str, Histogram]
    webhooks: dict[str, int] = field(default_factory=dict)


def bucket_index(value: float, buckets: tuple[float, ...]) -> int:
    for i, le in enumerate(buckets):
        if value <= le:
            return i
    return len(buckets)


class MetricsStore:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def snapshot(self) -> Snapshot:
        await self.fold()
        sessions = await self.sessions_by_state()
        waiting, pending = await self.queue_depth()
        counters = await self._redis.hgetall(keys.metrics_counters())
        messages: dict[tuple[str, str], int] = {}
        received: dict[str, int] = {}
        events: dict[str, int] = {}
        for name, value in counters.items():
            kind, _, rest = name.partition("|")
            if kind == "msg":
                status, _, provider = rest.partition("|")
                messages[(status, provider)] = int(value)
            elif kind == "recv":
                received[rest] = int(value)
            elif kind == "event":
                events[rest] = int(value)
        return Snapshot(sessions, waiting, pending, messages, received, events, await self.histograms(),
                        await self.webhooks())

    async def sessions_by_state(self) -> dict[str, int]:
        counts = {s.value: 0 for s in SessionState}
        members = await self._redis.smembers(keys.all_sessions())
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                ws, _, sid = member.partition("/")
                pipe.hget(keys.session(ws, sid), "state")
            states = await pipe.execute() if members else []
        for state in states:
            state = state or SessionState.INITIALIZING.value
            counts[state] = counts.get(state, 0) + 1
        return counts

    async def queue_depth(self) -> tuple[dict[str, int], dict[str, int]]:
        """(waiting, pending) per priority, summed over every session's queues."""
        waiting = {p: 0 for p in keys.PRIORITIES}
        pending = {p: 0 for p in keys.PRIORITIES}
        streams = []
        for member in await self._redis.smembers(keys.all_sessions()):
            ws, _, sid = member.partition("/")
            streams += [(p, keys.queue(ws, sid, p)) for p in keys.PRIORITIES]
        for ws in await self._redis.smembers(keys.cloud_workspaces()):  # messages routed to the Cloud API
            streams += [(p, keys.cloud_queue(ws, p)) for p in keys.PRIORITIES]
        if not streams:
            return waiting, pending
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, stream in streams:
                pipe.xinfo_groups(stream)
            infos = await pipe.execute(raise_on_error=False)
        async with self._redis.pipeline(transaction=False) as pipe:
            asked = []
            for (priority, stream), info in zip(streams, infos, strict=True):
                if isinstance(info, Exception):
                    continue  # no such stream yet: nothing queued
                group = next((g for g in info if g.get("name") == keys.QUEUE_GROUP), None)
                last = group.get("last-delivered-id", "0-0") if group else "0-0"
                pending[priority] += int(group.get("pending", 0)) if group else 0
                pipe.xrange(stream, min=f"({last}" if last != "0-0" else "-", max="+", count=QUEUE_SCAN_CAP)
                asked.append(priority)
            unread = await pipe.execute(raise_on_error=False) if asked else []
        for priority, entries in zip(asked, unread, strict=True):
            if not isinstance(entries, Exception):
                waiting[priority] += len(entries)
        return waiting, pending

    async def webhooks(self) -> dict[str, int]:
        """Dispatcher counters (delivered/failed/retried, when it records them) plus derived gauges."""
        stats = {k: int(v) for k, v in (await self._redis.hgetall(keys.webhook_stats())).items()}
        workspaces = await self._redis.smembers(keys.webhook_workspaces())
        endpoints = [m.split("/", 1) for m in await self._redis.smembers(keys.webhook_endpoint_lanes())]
        dead = pending = 0
        if workspaces or endpoints:
            async with self._redis.pipeline(transaction=False) as pipe:
                for ws in workspaces:
                    pipe.llen(keys.dead_letters(ws))
                    pipe.xpending(keys.events(ws), keys.WEBHOOK_GROUP)
                for ws, endpoint in endpoints:  # each endpoint's own (storage/webhook_endpoints.py)
                    pipe.llen(keys.endpoint_dead_letters(ws, endpoint))
                    pipe.xpending(keys.webhook_queue(ws, endpoint), keys.WEBHOOK_GROUP)
                replies = await pipe.execute(raise_on_error=False)
            for i in range(0, len(replies), 2):
                dead += replies[i] if isinstance(replies[i], int) else 0
                if isinstance(replies[i + 1], dict):
                    pending += int(replies[i + 1].get("pending") or 0)
        return {**stats, "dead_letters": dead, "pending": pending}

    async def histograms(self) -> dict[str, Histogram]:
        out = {}
        for name, buckets in HISTOGRAMS.items():
            raw = await self._redis.hgetall(keys.metrics_histogram(name))
            counts = [int(raw.get(f"b{i}", 0)) for i in range(len(buckets) + 1)]
            out[name] = Histogram(buckets, counts, float(raw.get("sum", 0)), int(raw.get("count", 0)))
        return out

    async def fold(self) -> int:
        """Fold new events of every workspace into the counters. Returns how many were folded."""
        folded = 0
        for ws in sorted(await self._workspaces()):
            for _ in range(FOLD_MAX_PER_WORKSPACE // FOLD_BATCH):
                try:
                    n = await self._fold_batch(ws)
                except (RedisError, OSError):
                    raise
                except Exception:  # a bug here must not take /metrics down: report what is folded so far
                    log.exception("metrics fold of %s failed", ws)
                    break
                folded += n
                if n < FOLD_BATCH:
                    break
        return folded

    async def _workspaces(self) -> set[str]:
        """Every workspace that can have events: registry, Cloud API only, webhook configured. Four SMEMBERS,
        not one SUNION: the sets are in different slots of a Redis Cluster."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in (keys.workspaces(), keys.provider_workspaces(), keys.cloud_workspaces(),
                          keys.webhook_workspaces()):
                pipe.smembers(index)
            members: list[set[str]] = await pipe.execute()
        return set[str]().union(*members)

    async def _fold_batch(self, ws: str) -> int:
        """One batch of `ws`'s events, folded once however many replicas scrape: the increments and the new
        cursor are one MULTI, guarded by WATCH on the cursors. Every key of the transaction is a metrics key
        (one slot, `{g:metrics}`); the events are read on the plain client (another slot), which the WATCH
        does not need: a batch is named by the cursor it starts after."""
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(keys.metrics_cursor())
                cursor = await pipe.hget(keys.metrics_cursor(), ws) or "0-0"
                batch = await self._redis.xrange(keys.events(ws), min=f"({cursor}", max="+", count=FOLD_BATCH)
                if not batch:
                    return 0
                events = [(eid, e) for eid, e in ((eid, _parse(f)) for eid, f in batch) if e is not None]
                lookups = await _lookups(self._redis, ws, events)
                counters, hist, qr_set, qr_del = _increments(ws, events, lookups)
                pipe.multi()
                for name, n in counters.items():
                    pipe.hincrby(keys.metrics_counters(), name, n)
                for name, observations in hist.items():
                    _observe(pipe, name, observations)
                if qr_set:
                    pipe.hset(keys.metrics_qr_started(), mapping=qr_set)
                if qr_del:
                    pipe.hdel(keys.metrics_qr_started(), *qr_del)
                pipe.hset(keys.metrics_cursor(), ws, batch[-1][0])
                await pipe.execute()
                return len(batch)
            except WatchError:
                return 0  # another replica folded this batch first
            except ResponseError:
                return 0


def _parse(fields: dict[str, str]) -> dict[str, Any] | None:
    """An event envelope, or None for an entry that is not one (it is skipped, not fatal)."""
    try:
        event = orjson.loads(fields["e"])
        if not isinstance(event, dict) or not isinstance(event.get("data") or {}, dict):
            return None
        float(event.get("ts") or 0)
        return event
    except (KeyError, ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
        return None


async def _lookups(redis: RedisClient, ws: str, events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What the events do not carry: a message's provider and accept time; a session's start.

    Read on a plain pipeline (one round trip): message hashes are not part of the fold's state,
    and `qr-started` only changes inside a fold, which the WATCH on the cursors serialises.
    """
    message_ids = sorted({(e.get("data") or {}).get("message_id") for _, e in events
                          if e.get("type", "").startswith("message.") and (e.get("data") or {}).get("message_id")})
    qr_sessions = sorted({f"{ws}/{e.get('session_id')}" for _, e in events if e.get("type") == "session.qr"})
    out: dict[str, Any] = {"messages": {}, "qr_started": {}}
    async with redis.pipeline(transaction=False) as pipe:
        for mid in message_ids:
            pipe.hmget(keys.message(ws, mid), ["provider", "created_at"])
        if qr_sessions:
            pipe.hmget(keys.metrics_qr_started(), qr_sessions)
        replies = await pipe.execute() if (message_ids or qr_sessions) else []
    for mid, (provider, created) in zip(message_ids, replies, strict=False):
        out["messages"][mid] = (provider, float(created) if created else None)
    if qr_sessions:
        out["qr_started"] = {k: float(v) for k, v in zip(qr_sessions, replies[-1], strict=True) if v}
    return out


def _increments(ws: str, events: list[tuple[str, dict[str, Any]]], lookups: dict[str, Any]
                ) -> tuple[Counter[str], dict[str, list[float]], dict[str, float], list[str]]:
    counters: Counter[str] = Counter()
    hist: dict[str, list[float]] = defaultdict(list)
    qr_started: dict[str, float] = dict(lookups["qr_started"])
    qr_set: dict[str, float] = {}
    qr_del: set[str] = set()
    for _, event in events:
        type_, data, ts = event.get("type", ""), event.get("data") or {}, float(event.get("ts") or time.time())
        counters[f"event|{type_}"] += 1
        session_key = f"{ws}/{event.get('session_id')}"
        mid = data.get("message_id")
        looked_up_provider, created_at = lookups["messages"].get(mid, (None, None))
        provider = data.get("provider") or looked_up_provider or "unknown"
        if type_ in MESSAGE_EVENTS:
            counters[f"msg|{MESSAGE_EVENTS[type_]}|{provider}"] += 1
        elif type_ == "message.ack" and data.get("status") in ("delivered", "read"):
            counters[f"msg|{data['status']}|{provider}"] += 1
        elif type_ == "message.received":
            counters[f"recv|{provider}"] += 1
        if type_ == "message.sent":
            if created_at is not None:
                hist["send_latency_seconds"].append(max(0.0, ts - created_at))
            if data.get("send_ms") is not None:
                hist["page_send_seconds"].append(max(0.0, float(data["send_ms"]) / 1000))
        elif type_ == "session.status" and data.get("state") == SessionState.INITIALIZING.value:
            qr_started[session_key] = ts
            qr_set[session_key] = ts
            qr_del.discard(session_key)
        elif type_ == "session.qr" and session_key in qr_started:
            hist["qr_generation_seconds"].append(max(0.0, ts - qr_started.pop(session_key)))
            qr_set.pop(session_key, None)
            qr_del.add(session_key)
    return counters, hist, qr_set, sorted(qr_del)


def _observe(pipe: Any, name: str, values: list[float]) -> None:
    buckets = HISTOGRAMS[name]
    per_bucket = Counter(bucket_index(v, buckets) for v in values)
    key = keys.metrics_histogram(name)
    for index, n in per_bucket.items():
        pipe.hincrby(key, f"b{index}", n)
    pipe.hincrbyfloat(key, "sum", sum(values))
    pipe.hincrby(key, "count", len(values))
