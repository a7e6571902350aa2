"""SessionActor: a session's lifecycle in a Ray actor of its own (`WA_SESSION_HOSTING=actor`).

The state machine is `SessionLifecycle`; this actor gives it a process and a
name (`session:{ws}:{sid}`, and `SessionActor(ws/sid)` as its repr: both are
what the Ray dashboard's actor list shows), and reaches the page in the node's BrowserHost over
Ray (the host also keeps its records: events, registry, auth state). Killing it
leaves the page and its sender running in the host; its successor attaches to
them.
"""

from __future__ import annotations

from typing import Any

import ray

from wa_ray.actors.session_lifecycle import SessionLifecycle
from wa_ray.runtime import RuntimeConfig


class RemotePort:
    """The page and the records in the node's BrowserHost, over Ray; the host signals back to this actor's
    handle. Everything that touches Redis or the master key happens in the host, so this process imports
    neither a Redis client nor cryptography."""

    def __init__(self, host: Any, ws: str, sid: str) -> None:
        self._host, self._ws, self._sid = host, ws, sid

    @staticmethod
    def _me() -> Any:
        return ray.get_runtime_context().current_actor

    async def attach(self) -> dict[str, Any] | None:
        return await self._host.attach.remote(self._ws, self._sid, self._me())

    async def open(self, restore: bool) -> None:
        await self._host.open_session.remote(self._ws, self._sid, self._me(), restore)

    async def close(self, unlinked: bool = False) -> None:
        await self._host.close_session.remote(self._ws, self._sid, unlinked)

    async def save_auth(self) -> None:
        await self._host.save_auth.remote(self._ws, self._sid)

    async def delete_auth(self) -> None:
        await self._host.delete_auth.remote(self._ws, self._sid)

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        await self._host.publish.remote(self._ws, self._sid, type_, data)

    async def set_state(self, state: str, reason: str, fields: dict[str, Any]) -> None:
        await self._host.set_state.remote(self._ws, self._sid, state, reason, fields)

    async def update(self, fields: dict[str, Any]) -> None:
        await self._host.update_registry.remote(self._ws, self._sid, fields)

    async def login(self) -> dict[str, Any]:
        return await self._host.login_of.remote(self._ws, self._sid)

    async def pairing_code(self, phone: str) -> str:
        return await self._host.pairing_code.remote(self._ws, self._sid, phone)

    async def takeover(self) -> bool:
        return await self._host.takeover.remote(self._ws, self._sid)

    async def sync(self, reason: str) -> str | None:
        return await self._host.sync.remote(self._ws, self._sid, reason)


@ray.remote(num_cpus=0, max_concurrency=100)
class SessionActor:
    def __init__(self, config: RuntimeConfig, ws: str, sid: str, host: Any) -> None:
        self._ws, self._sid = ws, sid
        self._life = SessionLifecycle(config, ws, sid, RemotePort(host, ws, sid))

    def __repr__(self) -> str:
        """What the Ray dashboard and state API show as the actor's `repr_name` (taken once, after
        __init__), and what prefixes its log lines: which session this process is."""
        return f"SessionActor({self._ws}/{self._sid})"

    async def start(self) -> str:
        return await self._life.start()

    async def on_page_signal(self, kind: str, payload: dict[str, Any]) -> None:
        await self._life.on_page_signal(kind, payload)

    async def reopen(self, reason: str) -> None:
        await self._life.reopen(reason)

    async def restart(self) -> str:
        return await self._life.restart()

    async def logout(self) -> str:
        return await self._life.logout()

    async def stop(self, purge: bool) -> None:
        await self._life.stop(purge)

    async def status(self) -> dict[str, Any]:
        return await self._life.status()
