"""ProviderSelector: which provider (WhatsApp Web or the Cloud API) a workspace's messages take.

The rule (`choose`, pure): a manual override wins; otherwise the workspace's
priority provider when it is healthy, else the other one when that is
healthy. Health: a Web session is healthy when `connected` and not paused by
its hourly cap; the Cloud API when it has credentials and its circuit breaker
(kept by the cloud sender) is closed.

The deployment is part of the `wa-ray` application: `wa_ray.entry.wiring.application` binds it
into the Ingress (`Ingress.bind(config, ProviderSelector.bind(config))`), so each ingress replica
gets its handle as a constructor argument, never by looking a name up. It does two things:

* `decide(ws)` answers the ingress with a `Snapshot` of the inputs (priority,
  override, per-session health, Cloud API health, and the default sender's:
  the primary number, the healthy sessions roomiest first, the plan limits). The ingress keeps it per
  workspace for `provider_cache_ttl_s` (1 s by default) in `SelectorClient`
  and applies `choose` itself, so POST /messages makes at most one Ray call
  per workspace per second, not one per message (a Ray call per message
  caps the pipeline well under the 167 msg/s target). A
  stale snapshot costs little: a message routed to a provider that has just
  gone down is retried once on the other by the sender that fails it.
* A watcher, once a second per workspace with a provider config (a round over them all, a bounded
  number evaluated at once: serve_app/workspace_round.py), publishes
  `provider.changed` whenever the workspace-level choice flips (a Redis GETSET
  makes one announcement per flip however many replicas run), and moves
  messages stranded in the queue of a Web session that is gone (logged out,
  banned, failed) or down for longer than `failover_grace_s` to the Cloud API. A campaign's message is
  not moved (storage/messages.py `may_move`): its entry stays unacknowledged in the rerouter's pending
  list, where the session's next sender reclaims it if the number comes back, and the campaign runner
  moves it meanwhile (another number, or the campaign's fallback template) if the number is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis
from ray import serve

from wa_ray.master_keys import master_and_previous
from wa_ray.storage import keys
from wa_ray.storage.ban_risk import BanRiskStore
from wa_ray.storage.events import EventLog
from wa_ray.storage.messages import META, WEBJS, MessageStore
from wa_ray.storage.numbers import DefaultInputs, NumberStore
from wa_ray.storage.pacing import PacingPolicy, PacingStore
from wa_ray.storage.providers import Health, ProviderConfig, ProviderStore
from wa_ray.storage.redis_client import connect
from wa_ray.config import RuntimeConfig
from wa_ray.serve_app.workspace_round import WorkspaceRound
from wa_ray.events import PROVIDER_CHANGED, Event

log = logging.getLogger(__name__)

SELECTOR_DEPLOYMENT = "ProviderSelector"
WATCH_EVERY_S = 1.0
SLOW_ROUND_S = 5.0
REROUTER = "rerouter"
NO_CONTACT_CAP = 1 << 30  # new-contact room of a number when the workspace's ban-risk policy is off


@dataclass(frozen=True)
class Snapshot:
    ws: str
    priority: str
    override: str | None
    sessions: dict[str, bool]
    meta: bool
    meta_configured: bool
    at: float
    # the default sender's inputs (storage/numbers.py): the primary number, the healthy sessions roomiest
    # first, and the plan limits, so a send needs no Redis call of its own to pick a number or to learn
    # that the workspace has no daily message limit
    primary: str | None = None
    ranked: list[str] = field(default_factory=list)
    max_numbers: int | None = None
    messages_per_day: int | None = None

    def webjs(self, session_id: str | None = None) -> bool:
        return self.sessions.get(session_id, False) if session_id else any(self.sessions.values())

    def default_session(self) -> str | None:
        """The primary when it can send; else the healthy session with the most headroom; else the first
        healthy one by id; else (nothing can send) the first session by id, where the message waits."""
        if self.primary and self.sessions.get(self.primary):
            return self.primary
        for sid in self.ranked:
            if self.sessions.get(sid):
                return sid
        ready = sorted(s for s, ok in self.sessions.items() if ok)
        return ready[0] if ready else min(self.sessions, default=None)


def choose(priority: str, override: str | None, webjs_ok: bool, meta_ok: bool) -> str | None:
    """Pure: the provider to use now; None when neither can send."""
    if override in (WEBJS, META):
        return override
    first = META if priority == META else WEBJS
    other = WEBJS if first == META else META
    ok = {WEBJS: webjs_ok, META: meta_ok}
    if ok[first]:
        return first
    if ok[other]:
        return other
    return None


def why(snapshot: Snapshot, current: str | None) -> str:
    if snapshot.override:
        return "manual override"
    if current == snapshot.priority:
        return "priority provider is healthy"
    if current is None:
        return "no provider can send"
    down = "no connected session" if snapshot.priority == WEBJS else "cloud api circuit open or not configured"
    return f"failover: {down}"


@dataclass(frozen=True)
class NumberSource:
    """Where a snapshot reads the default sender's inputs: the numbers, and the workspace's pacing and
    ban-risk policies (the headroom ranking is by its pacing windows and its daily new-contacts cap; with
    the ban-risk policy off there is no cap)."""

    numbers: NumberStore
    pacing: PacingStore
    ban_risk: BanRiskStore

    @classmethod
    def over(cls, redis: aioredis.Redis, default: PacingPolicy) -> NumberSource:
        return cls(NumberStore(redis), PacingStore(redis, default), BanRiskStore(redis))

    async def inputs(self, ws: str, healthy: list[str]) -> DefaultInputs:
        risk = await self.ban_risk.policy(ws)
        cap = risk.daily_new_contacts if risk.enabled else NO_CONTACT_CAP
        return await self.numbers.default_inputs(ws, healthy, await self.pacing.policy(ws), cap)


async def snapshot(store: ProviderStore, ws: str,
                   numbers: NumberSource | None = None) -> tuple[Snapshot, ProviderConfig, Health]:
    """The provider inputs of `ws`; with `numbers`, the default sender's too (the watcher needs only the former)."""
    cfg = await store.get(ws)
    health = await store.health(ws, cfg)
    extra = await numbers.inputs(ws, [s for s, ok in health.sessions.items() if ok]) if numbers else DefaultInputs()
    snap = Snapshot(ws, cfg.priority, cfg.override, health.sessions, health.meta, health.meta_configured, time.time(),
                    extra.primary, extra.ranked, extra.limits.max_numbers, extra.limits.messages_per_day)
    return snap, cfg, health


@serve.deployment(name=SELECTOR_DEPLOYMENT, num_replicas=1, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
class ProviderSelector:
    async def __init__(self, config: RuntimeConfig) -> None:
        self._redis = connect(config.redis_url)
        self._store = ProviderStore(self._redis, *master_and_previous(config))
        self._messages = MessageStore(self._redis)
        self._events = EventLog(self._redis)
        self._numbers = NumberSource.over(self._redis, PacingPolicy.from_config(config))
        self._round = WorkspaceRound(self.evaluate, "provider evaluation")
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def decide(self, ws: str) -> dict[str, Any]:
        snap, _, _ = await snapshot(self._store, ws, self._numbers)
        return asdict(snap)

    async def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError("provider watcher stopped")

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.watch_round()
            except Exception:
                log.exception("provider watcher; retrying")
            took = time.monotonic() - started
            if took > SLOW_ROUND_S:  # failover and its return wait on this round: say when it lags
                log.warning("provider watch round took %.1f s", took)
            await asyncio.sleep(max(0.1, WATCH_EVERY_S - (time.monotonic() - started)))

    async def watch_round(self) -> None:
        """Evaluate every workspace with a provider config, each on its own, a bounded number at once and
        each under a timeout (serve_app/workspace_round.py). One whose evaluation raises or hangs (a config
        its key cannot decrypt, say) must not stop the round, or every other workspace would never fail over
        or come back; and one after another, hundreds of workspaces would make each failover wait seconds."""
        await self._round.run(await self._store.workspaces())

    async def evaluate(self, ws: str) -> str | None:
        snap, cfg, health = await snapshot(self._store, ws)
        current = choose(snap.priority, snap.override, snap.webjs(), snap.meta)
        await self._announce(ws, current, snap)
        if current == META:
            await self._rescue_stranded(ws, cfg, health)
        return current

    async def _announce(self, ws: str, current: str | None, snap: Snapshot) -> None:
        value = _recorded(current)
        previous = await self._redis.getset(keys.provider_current(ws), value)
        if previous is not None and previous != value:
            data = {"from": previous, "to": value, "reason": why(snap, current), "priority": snap.priority,
                    "override": snap.override, "sessions": snap.sessions, "cloud_api": snap.meta}
            await self._events.publish(Event(PROVIDER_CHANGED, ws, None, data))

    async def _rescue_stranded(self, ws: str, cfg: ProviderConfig, health: Health) -> None:
        """Queued messages of a session that is gone (or down past the grace) go to the Cloud API."""
        now = time.time()
        for sid, since in health.sessions_gone_since.items():
            if since and now - since < cfg.failover_grace_s:
                continue
            for priority in keys.PRIORITIES:
                await self._move_queue(ws, sid, keys.queue(ws, sid, priority))

    async def _move_queue(self, ws: str, sid: str, stream: str) -> None:
        try:
            # first what an earlier move read and did not finish (a replica restarted, an evaluation timed
            # out mid-rescue: serve_app/workspace_round.py), which nothing else would ever move; then new ones.
            # Moving an entry twice is harmless: reroute() only moves a record still `queued` to WEBJS.
            unfinished = await self._redis.xreadgroup(keys.QUEUE_GROUP, REROUTER, {stream: "0"}, count=200)
            reply = await self._redis.xreadgroup(keys.QUEUE_GROUP, REROUTER, {stream: ">"}, count=200)
        except aioredis.ResponseError:
            return  # no such queue or group yet: nothing stranded
        entries = [(eid, (fields or {}).get("m")) for read in (unfinished, reply) for _, items in read or []
                   for eid, fields in items]
        # plus what the idle sender had read and not started (still `queued`); `sending` stays with its owner
        for pending in await self._redis.xpending_range(stream, keys.QUEUE_GROUP, "-", "+", 200):
            if pending["consumer"] == REROUTER:
                continue
            claimed = await self._redis.xclaim(stream, keys.QUEUE_GROUP, REROUTER, 0, [pending["message_id"]])
            entries += [(eid, (fields or {}).get("m")) for eid, fields in claimed]
        for entry_id, message_id in entries:
            record = await self._messages.record(ws, message_id) if message_id else {}
            if not record or record.get("status") != "queued" or record.get("provider") != WEBJS:
                if not record or record.get("status") not in ("queued", "sending"):
                    await self._redis.xack(stream, keys.QUEUE_GROUP, entry_id)
                continue
            moved = await self._messages.reroute(message_id, record, META, "", f"session {sid} is down",
                                                 allowed=("queued",), from_stream=stream, entry_id=entry_id)
            if moved:
                await self._redis.xdel(stream, entry_id)


def _recorded(current: str | None) -> str:
    return current or "none"


async def record_first_choice(redis: aioredis.Redis, ws: str, current: str | None) -> None:
    """The choice when a workspace's provider config is written, unless one is recorded already. The watcher
    announces flips from the recorded choice; with none yet, its first look only records one, so a flip
    before that look (a session linked within the watcher's round of a fresh config) would go unannounced."""
    await redis.set(keys.provider_current(ws), _recorded(current), nx=True)


class SelectorClient:
    """The ingress side: a per-workspace snapshot cache in front of the deployment (and a fallback).

    `handle` is the ProviderSelector's deployment handle that Serve hands the Ingress (bound in one
    application); None where no selector is deployed (an app built outside Serve): then, as when the
    selector is down, the replica decides from the same Redis state itself and a send never fails for it.

    Single flight: when a workspace's snapshot expires, the requests that find it stale share one fetch
    instead of each making its own Ray call (N concurrent POSTs would fan every expiry out into N
    `decide` calls)."""

    def __init__(self, store: ProviderStore, ttl_s: float, handle: Any = None) -> None:
        self.store = store
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, Snapshot]] = {}
        self._inflight: dict[str, asyncio.Task[Snapshot]] = {}
        self._generation: dict[str, int] = {}  # bumped by invalidate: a fetch begun before it is not cached
        self._handle = handle
        # deciding locally (no selector) ranks by the seed pacing policy plus the workspace's overrides
        self._numbers = NumberSource.over(store.redis, PacingPolicy())

    async def snapshot(self, ws: str) -> Snapshot:
        hit = self._cache.get(ws)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        fetch = self._inflight.get(ws)
        if fetch is None:
            # a task of its own: the request that started it may leave (client gone) without cancelling it
            fetch = self._inflight[ws] = asyncio.get_running_loop().create_task(self._fetch(ws))
            fetch.add_done_callback(lambda t, ws=ws: self._done(ws, t))
        return await asyncio.shield(fetch)

    def _done(self, ws: str, task: asyncio.Task[Snapshot]) -> None:
        if self._inflight.get(ws) is task:
            del self._inflight[ws]
        if not task.cancelled():
            task.exception()  # retrieved, so an error every waiter already got is not logged again at exit

    async def _fetch(self, ws: str) -> Snapshot:
        generation = self._generation.get(ws, 0)
        snap: Snapshot | None = None
        if self._handle is not None:
            try:
                snap = Snapshot(**await self._handle.decide.remote(ws))
            except Exception as exc:
                # the selector is down: decide from the same Redis state, never fail the send; the handle
                # stays (Serve routes it to the selector's next replica once there is one)
                log.warning("provider selector unavailable (%s); deciding locally", type(exc).__name__)
        if snap is None:
            snap, _, _ = await snapshot(self.store, ws, self._numbers)
        if self._generation.get(ws, 0) == generation:
            self._cache[ws] = (time.monotonic() + self._ttl, snap)
        return snap

    def invalidate(self, ws: str) -> None:
        self._generation[ws] = self._generation.get(ws, 0) + 1
        self._cache.pop(ws, None)
        self._inflight.pop(ws, None)  # the next request fetches afresh rather than join a fetch begun before

