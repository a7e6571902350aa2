"""SessionSupervisor: placement, per-node limit, restart, restore-at-boot, drain.

A named detached actor and the only creator of sessions, so placement
decisions come from one place. Nodes advertise `wa_session_slot` (the per-node
limit). With `actor` hosting each SessionActor holds one slot, so Ray enforces
the limit exactly; the supervisor still picks the node itself from free slots,
because soft node affinity waits on a full node instead of moving on. With
`host` hosting the session is a grain in the node's BrowserHost and the
supervisor's own count against the slots is the limit (it is the only one that
places). If the supervisor itself dies, Ray restarts it and it adopts the
(detached) session actors, or the hosts' grains, it finds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from wa_ray.actors.browser_host import BrowserHost
from wa_ray.actors.session_actor import SessionActor
from wa_ray.sessions.state import SessionState
from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect
from wa_ray.storage.registry import SessionRegistry
from wa_ray.storage.media import media_root
from wa_ray.storage.retention import RetentionBounds, RetentionSweep
from wa_ray.storage.workspace_purge import WorkspacePurge
from wa_ray.supervisors.placement import SLOT, PlacementError, QuotaExceeded, least_loaded, nodes_from_ray
from wa_ray.supervisors.session_handles import ActorSession, GrainSession, SessionGone, SessionHandle
from wa_ray import NAMESPACE, browser_host_name, session_actor_name
from wa_ray.runtime import RuntimeConfig

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0
# how often the supervisor records that the service is alive (keys.service_alive): a whole-service stop
# credits a connected number at most this much of its downtime as uptime
ALIVE_EVERY_S = 5.0
PING_TIMEOUT_S = 5.0
MAX_RESTARTS = 5
RESTORE_STAGGER_S = 0.1
RESTORE_CONCURRENCY = 4
RESTORABLE = {SessionState.CONNECTED.value, SessionState.RECONNECTING.value}

__all__ = ["SessionSupervisor", "PlacementError", "QuotaExceeded", "SLOT", "actor_name"]


actor_name = session_actor_name


class NodeGone(Exception):
    """The node a session was placed on is no longer alive in the cluster."""


@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1)
class SessionSupervisor:
    async def __init__(self, config: RuntimeConfig) -> None:
        self._config = config
        self._redis = connect(config.redis_url)
        self._registry = SessionRegistry(self._redis)
        self._hosts: dict[str, Any] = {}
        self._host_incarnations: dict[str, str] = {}
        self._placed: dict[tuple[str, str], str] = {}  # (ws, sid) -> node id
        self._actors: dict[tuple[str, str], SessionHandle] = {}
        self._grains = config.session_hosting == "host"
        self._draining: set[str] = set()
        self._starting: set[tuple[str, str]] = set()  # a start is in flight: the watch must not start it again
        self._lock = asyncio.Lock()
        self._restored = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._adopt_and_restore()), loop.create_task(self._watch())]

    async def stop_watching(self) -> None:
        """The service is stopping: hosts close their pages next, and that must not look like a crash to
        bring sessions back from (their registry state is what the next start restores)."""
        for task in self._tasks:
            task.cancel()

    async def ping(self) -> dict[str, Any]:
        return {"sessions": len(self._actors), "restored": self._restored.is_set()}

    async def wait_restored(self) -> int:
        await self._restored.wait()
        return len(self._actors)

    async def warm(self) -> None:
        """Launch each node's browser ahead of the first session, so the first QR is quick."""
        await asyncio.gather(*(self._host(n.node_id).warm.remote() for n in self._nodes()))

    async def create_session(self, ws: str, sid: str) -> dict[str, Any]:
        await self._ensure(ws, sid, new=True)
        return await self._registry.get(ws, sid) or {}

    async def restart_session(self, ws: str, sid: str) -> str:
        return await (await self._ensure(ws, sid)).restart()

    async def logout_session(self, ws: str, sid: str) -> str:
        return await (await self._ensure(ws, sid)).logout()

    async def delete_session(self, ws: str, sid: str) -> bool:
        async with self._lock:
            handle = self._actors.pop((ws, sid), None) or self._named(ws, sid)
            self._placed.pop((ws, sid), None)
        if handle is not None:
            try:
                await handle.stop(purge=True)
            finally:
                await handle.discard()
        await self._registry.remove(ws, sid)
        return handle is not None

    async def placements(self) -> dict[str, str]:
        return {f"{ws}/{sid}": node for (ws, sid), node in self._placed.items()}

    async def drain_node(self, node_id: str) -> int:
        """Move every session off a node (sessions reopen elsewhere from saved auth state, no QR)."""
        self._draining.add(node_id)
        moved = [key for key, node in self._placed.items() if node == node_id]
        for ws, sid in moved:
            async with self._lock:
                handle = self._actors.pop((ws, sid), None)
                self._placed.pop((ws, sid), None)
            if handle is not None:
                await handle.stop(purge=False)
                await handle.discard()
            await self._ensure(ws, sid)
        return len(moved)

    async def undrain_node(self, node_id: str) -> None:
        self._draining.discard(node_id)

    async def _ensure(self, ws: str, sid: str, new: bool = False) -> SessionHandle:
        async with self._lock:
            handle = self._actors.get((ws, sid)) or self._named(ws, sid)
            if handle is not None:
                self._actors[(ws, sid)] = handle
                return handle
            fresh = False
            if new:
                await self._check_quota(ws, sid)
                # never placed, so no saved state to open the page from (the create route may have written
                # how it links, login and phone, into the record first)
                fresh = not (await self._registry.get(ws, sid) or {}).get("node_id")
            node = least_loaded(self._nodes(), self._placed.values(), frozenset(self._draining))
            handle = self._place(ws, sid, node)
            self._actors[(ws, sid)] = handle
            self._placed[(ws, sid)] = node
            await self._registry.register(ws, sid, node)
            if fresh and not self._grains:
                # the page loads while the actor's process starts; the actor attaches to it (BrowserHost.preopen)
                self._host(node).preopen.remote(ws, sid)
        await self._start(ws, sid, handle)
        return handle

    async def _start(self, ws: str, sid: str, handle: SessionHandle) -> None:
        self._starting.add((ws, sid))
        try:
            await handle.start()
        finally:
            self._starting.discard((ws, sid))

    def _place(self, ws: str, sid: str, node: str) -> SessionHandle:
        if self._grains:
            return GrainSession(self._host(node), ws, sid)
        return ActorSession(SessionActor.options(
            name=actor_name(ws, sid), namespace=NAMESPACE, lifetime="detached",
            resources={SLOT: 1} if self._advertises_slots(node) else {},
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False), **self._config.actor_options(),
        ).remote(self._config, ws, sid, self._host(node)))

    async def _check_quota(self, ws: str, sid: str) -> None:
        existing = {s["session_id"] for s in await self._registry.list(ws)}
        if sid not in existing and len(existing) >= self._config.sessions_per_workspace:
            raise QuotaExceeded(f"workspace {ws} has its {self._config.sessions_per_workspace} sessions")

    async def _adopt_and_restore(self) -> None:
        """After a supervisor restart: adopt live session actors; after a service restart: bring back
        sessions that were connected, a few at a time so Chromium is not stampeded."""
        slots = asyncio.Semaphore(RESTORE_CONCURRENCY)

        async def restore(ws: str, sid: str) -> None:
            async with slots:
                try:
                    await self._ensure(ws, sid)
                except Exception:
                    log.exception("restore of %s/%s failed", ws, sid)
                await asyncio.sleep(RESTORE_STAGGER_S)

        jobs = []
        grains = await self._live_grains() if self._grains else {}
        alive_at = await self._redis.get(keys.service_alive())
        for ws, sid in sorted(await self._registry.all()):
            record = await self._registry.get(ws, sid) or {}
            handle = grains.get((ws, sid)) or self._named(ws, sid)
            if handle is not None:
                self._actors[(ws, sid)] = handle
                if record.get("node_id"):
                    self._placed[(ws, sid)] = record["node_id"]
                if record.get("state") in RESTORABLE:
                    jobs.append(self._start_if_never_started(ws, sid, handle))
            elif record.get("state") in RESTORABLE:
                # no live owner: the service stopped under it, so its connected time ended back then
                await self._registry.end_stretch_at(ws, sid, float(alive_at) if alive_at else None)
                jobs.append(restore(ws, sid))
        await asyncio.gather(*jobs)
        self._restored.set()

    async def _start_if_never_started(self, ws: str, sid: str, handle: SessionHandle) -> None:
        """An adopted owner the predecessor created and never started (`_start_if_stranded`) is started
        before the restore counts as done. (One still in its constructor does not answer in time here;
        the watch starts it once it does.)"""
        try:
            status = await asyncio.wait_for(handle.status(), timeout=PING_TIMEOUT_S)
        except Exception:  # the watch revives it if it is dead; anything else is logged, not fatal
            log.exception("status of adopted %s/%s failed", ws, sid)
            return
        task = self._start_if_stranded((ws, sid), status)
        if task is not None:
            await asyncio.wait([task])  # its failure is logged by _forget_start

    async def _watch(self) -> None:
        alive_written = 0.0
        retention_due = time.time() + self._config.retention_sweep_s
        retention: asyncio.Task[Any] | None = None
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            try:
                await self._watch_hosts()
                await self._check_actors()
                # not before the restore has read the last mark: that is where the stopped stretches ended
                if self._restored.is_set() and time.time() - alive_written >= ALIVE_EVERY_S:
                    alive_written = time.time()
                    await self._redis.set(keys.service_alive(), alive_written)
                    # a deleted workspace's late writes (storage/workspace_purge.py): named keys, no SCAN
                    await WorkspacePurge(self._redis).follow_up()
                # retention per workspace (storage/retention.py), beside the watch rather than in it: a pass
                # SCANs the keyspace and must not hold up the actor checks
                if time.time() >= retention_due and (retention is None or retention.done()):
                    retention_due = time.time() + self._config.retention_sweep_s
                    retention = asyncio.create_task(self._retention_sweep())
            except Exception:  # a Redis or Ray hiccup must not end the watch for good
                log.exception("session watch failed; continuing")

    async def _retention_sweep(self) -> None:
        try:
            await self.sweep_retention()
        except Exception:  # the next pass retries; a failed one loses nothing
            log.exception("retention sweep failed; next pass in %.0f s", self._config.retention_sweep_s)

    async def sweep_retention(self) -> dict[str, int]:
        """One retention pass (the watch runs one every WA_RETENTION_SWEEP_S): what it removed, by kind."""
        counts = await RetentionSweep(self._redis, RetentionBounds.of(self._config),
                                      media_root(self._config.data_dir)).run_once()
        return dict(vars(counts))

    async def _watch_hosts(self) -> None:
        """A host seen as a new incarnation lost its pages: its sessions reopen them. (The host also
        announces its own restart; this catches it within a second when the supervisor is up.) A node
        that joined gets its host and browser started now, so the first sessions moved there (a lost
        node, a drain) do not wait for a Chromium launch."""
        alive = {node.node_id for node in self._nodes()}
        for node_id in alive - set(self._hosts):
            self._host(node_id).warm.remote()
        for node, host in list(self._hosts.items()):
            if node not in alive:
                continue  # gone with its node: a ping would only wait out its timeout
            try:
                incarnation = (await asyncio.wait_for(host.ping.remote(), timeout=PING_TIMEOUT_S))["incarnation"]
            except (ray.exceptions.RayActorError, asyncio.TimeoutError):
                continue  # restarting, or its node is gone (its sessions' actors die with it)
            if self._host_incarnations.setdefault(node, incarnation) != incarnation:
                self._host_incarnations[node] = incarnation
                for key, placed in list(self._placed.items()):
                    handle = self._actors.get(key)
                    if placed == node and handle is not None:
                        handle.reopen("browser host restarted")

    async def _check_actors(self) -> None:
        alive = {node.node_id for node in self._nodes()}
        for key in [k for k, node in list(self._placed.items()) if alive and node not in alive]:
            if self._actors.get(key) is not None:  # its node left the cluster: no need to wait for a timeout
                await self._revive(key, NodeGone(self._placed.get(key, "")))
        checks = {key: asyncio.ensure_future(handle.status()) for key, handle in list(self._actors.items())}
        for key, pending in checks.items():
            try:
                status = await asyncio.wait_for(pending, timeout=PING_TIMEOUT_S)
            except SessionGone:
                # its host restarted and lost its grains (the host brings them back itself; this makes sure)
                handle = self._actors.get(key)
                if handle is not None:
                    handle.reopen("browser host restarted")
            except (ray.exceptions.RayActorError, asyncio.TimeoutError) as exc:
                if self._actors.get(key) is not None:
                    await self._revive(key, exc)
            else:
                self._start_if_stranded(key, status)

    def _start_if_stranded(self, key: tuple[str, str], status: dict[str, Any]) -> asyncio.Task[None] | None:
        """Every owner the supervisor holds was started by whoever placed it, and only delete and drain stop
        one (they drop it from here first), so one still `stopped` lost its start: its placer died after
        creating it (a supervisor killed mid-revive; an adopted actor still in its constructor). Its page
        keeps working, but the page's crash signals go to the dead predecessor, so the next browser crash
        would strand the session (chaos suite, 2 of 14 runs)."""
        handle = self._actors.get(key)
        if handle is None or status.get("state") != SessionState.STOPPED.value or key in self._starting:
            return None
        ws, sid = key
        log.warning("session %s/%s is placed but was never started; starting it", ws, sid)
        task = asyncio.get_running_loop().create_task(self._start(ws, sid, handle))
        self._tasks.append(task)
        task.add_done_callback(self._forget_start)
        return task

    def _forget_start(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("start of a stranded session failed: %r", task.exception())

    async def _revive(self, key: tuple[str, str], cause: Exception) -> None:
        ws, sid = key
        # counted before the dead handle is dropped: when Redis is away (restarting) this raises and the
        # next round of the watch tries again; dropped first, the session was never watched or revived again
        restarts = await self._registry.incr_restarts(ws, sid)
        async with self._lock:
            self._actors.pop(key, None)
            self._placed.pop(key, None)
        if restarts > MAX_RESTARTS:
            await self._registry.set_state(ws, sid, SessionState.FAILED.value, reason=f"actor died {restarts} times")
            return
        log.warning("session %s/%s actor lost (%s); restarting", ws, sid, type(cause).__name__)
        try:
            await self._ensure(ws, sid)
        except Exception:
            log.exception("restart of %s/%s failed", ws, sid)

    def _named(self, ws: str, sid: str) -> SessionHandle | None:
        if self._grains:
            return None  # grains are found through their hosts (_live_grains)
        try:
            return ActorSession(ray.get_actor(actor_name(ws, sid), namespace=NAMESPACE))
        except ValueError:
            return None

    async def _live_grains(self) -> dict[tuple[str, str], SessionHandle]:
        """Every grain the live hosts hold, for a restarted supervisor to adopt."""
        found: dict[tuple[str, str], SessionHandle] = {}
        for node in self._nodes():
            host = self._host(node.node_id)
            try:
                keys = await asyncio.wait_for(host.grains.remote(), timeout=PING_TIMEOUT_S)
            except (ray.exceptions.RayActorError, asyncio.TimeoutError):
                continue
            for ws, sid in keys:
                found[(ws, sid)] = GrainSession(host, ws, sid)
        return found

    def _nodes(self) -> list:
        return nodes_from_ray(ray.nodes(), self._config.sessions_per_node)

    def _advertises_slots(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Resources"].get(SLOT) for n in ray.nodes())

    def _host(self, node_id: str) -> Any:
        if node_id not in self._hosts:
            self._hosts[node_id] = BrowserHost.options(
                name=browser_host_name(node_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                **self._config.actor_options(),
            ).remote(self._config)
        return self._hosts[node_id]
