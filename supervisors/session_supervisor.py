"""SessionSupervisor: placement, per-node limit, restart, restore-at-boot.

A named detached actor, the only one that creates SessionActors, so placement
decisions come from one place. Nodes advertise `wa_session_slot` (the per-node
limit); the supervisor picks the node with most free slots itself, because
soft node affinity waits on a full node instead of moving on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.browser_host import BrowserHost
from actors.session_actor import SessionActor
from sessions.state import SessionState
from storage.redis_client import connect
from storage.registry import SessionRegistry
from wa_ray import NAMESPACE
from wa_ray.config import RuntimeConfig

log = logging.getLogger(__name__)

SLOT = "wa_session_slot"
MONITOR_INTERVAL_S = 1.0
MAX_RESTARTS = 5
RESTORE_STAGGER_S = 0.2
RESTORABLE = {SessionState.CONNECTED.value, SessionState.RECONNECTING.value, SessionState.INITIALIZING.value}


class PlacementError(RuntimeError):
    pass


def actor_name(ws: str, sid: str) -> str:
    return f"session:{ws}:{sid}"


@ray.remote(num_cpus=0, max_concurrency=1000)
class SessionSupervisor:
    def __init__(self, config: RuntimeConfig) -> None:
        self._config = config
        self._redis = connect(config.redis_url)
        self._registry = SessionRegistry(self._redis)
        self._hosts: dict[str, Any] = {}
        self._placed: dict[tuple[str, str], str] = {}  # (ws, sid) -> node id
        self._actors: dict[tuple[str, str], Any] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def boot(self, restore: bool = True) -> int:
        """Start monitoring and bring back sessions that were live before the service stopped."""
        restored = 0
        if restore:
            for ws, sid in sorted(await self._registry.all()):
                record = await self._registry.get(ws, sid) or {}
                if record.get("state") in RESTORABLE:
                    await self._ensure(ws, sid)
                    restored += 1
                    await asyncio.sleep(RESTORE_STAGGER_S)  # no Chromium stampede
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch())
        return restored

    async def warm(self) -> None:
        """Launch each node's browser ahead of the first session (first QR in well under a second)."""
        await asyncio.gather(*(self._host(n).warm.remote() for n in self._nodes()))

    async def create_session(self, ws: str, sid: str) -> dict[str, Any]:
        await self._ensure(ws, sid)
        return await self._registry.get(ws, sid) or {}

    async def restart_session(self, ws: str, sid: str) -> str:
        actor = self._actors.get((ws, sid)) or await self._ensure(ws, sid)
        return await actor.restart.remote()

    async def logout_session(self, ws: str, sid: str) -> str:
        actor = self._actors.get((ws, sid)) or await self._ensure(ws, sid)
        return await actor.logout.remote()

    async def delete_session(self, ws: str, sid: str) -> bool:
        async with self._lock:
            actor = self._actors.pop((ws, sid), None) or self._named(ws, sid)
            self._placed.pop((ws, sid), None)
        if actor is not None:
            try:
                await actor.stop.remote(purge=True)
            finally:
                ray.kill(actor, no_restart=True)
        await self._registry.remove(ws, sid)
        return actor is not None

    async def placements(self) -> dict[str, str]:
        return {f"{ws}/{sid}": node for (ws, sid), node in self._placed.items()}

    async def _ensure(self, ws: str, sid: str) -> Any:
        async with self._lock:
            actor = self._actors.get((ws, sid)) or self._named(ws, sid)
            if actor is not None:
                self._actors[(ws, sid)] = actor
                return actor
            node = self._pick_node()
            host = self._host(node)
            actor = SessionActor.options(
                name=actor_name(ws, sid), namespace=NAMESPACE, lifetime="detached",
                resources={SLOT: 1} if self._has_slots(node) else {},
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(self._config, ws, sid, host)
            self._actors[(ws, sid)] = actor
            self._placed[(ws, sid)] = node
            await self._registry.register(ws, sid, node)
        await actor.start.remote()
        return actor

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            for key, actor in list(self._actors.items()):
                try:
                    await asyncio.wait_for(actor.status.remote(), timeout=5)
                except (ray.exceptions.RayActorError, asyncio.TimeoutError) as exc:
                    await self._revive(key, exc)

    async def _revive(self, key: tuple[str, str], cause: Exception) -> None:
        ws, sid = key
        async with self._lock:
            self._actors.pop(key, None)
        restarts = await self._registry.incr_restarts(ws, sid)
        if restarts > MAX_RESTARTS:
            await self._registry.set_state(ws, sid, SessionState.FAILED.value, reason=f"actor died {restarts} times")
            return
        log.warning("session %s/%s actor lost (%s); restarting", ws, sid, type(cause).__name__)
        try:
            await self._ensure(ws, sid)
        except Exception:
            log.exception("restart of %s/%s failed", ws, sid)

    def _named(self, ws: str, sid: str) -> Any | None:
        try:
            return ray.get_actor(actor_name(ws, sid), namespace=NAMESPACE)
        except ValueError:
            return None

    def _nodes(self) -> list[str]:
        return [n["NodeID"] for n in ray.nodes() if n["Alive"]]

    def _has_slots(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Resources"].get(SLOT) for n in ray.nodes())

    def _pick_node(self) -> str:
        capacity = {n["NodeID"]: int(n["Resources"].get(SLOT, self._config.sessions_per_node))
                    for n in ray.nodes() if n["Alive"]}
        used = {node: 0 for node in capacity}
        for node in self._placed.values():
            if node in used:
                used[node] += 1
        free = {node: capacity[node] - used[node] for node in capacity}
        best = max(free, key=lambda n: free[n], default=None)
        if best is None or free[best] <= 0:
            raise PlacementError("every node is at its session limit")
        return best

    def _host(self, node_id: str) -> Any:
        if node_id not in self._hosts:
            self._hosts[node_id] = BrowserHost.options(
                name=f"browser-host:{node_id[:16]}", namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self._config)
        return self._hosts[node_id]
