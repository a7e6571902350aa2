"""How the supervisor reaches a session's lifecycle, whichever way it is hosted.

`ActorSession` wraps a SessionActor (its own process, `WA_SESSION_HOSTING=actor`);
`GrainSession` wraps a SessionLifecycle grain inside the node's BrowserHost
(`host`). The supervisor's placement, health checks, restore and drain are the
same code for both.
"""

from __future__ import annotations

from typing import Any, Protocol

import ray


class SessionGone(Exception):
    """The session's owner is not there any more (its actor died, or its host lost its grains)."""


class SessionHandle(Protocol):
    async def start(self) -> str: ...

    async def restart(self) -> str: ...

    async def logout(self) -> str: ...

    async def stop(self, purge: bool) -> None: ...

    async def status(self) -> dict[str, Any]: ...

    def reopen(self, reason: str) -> None: ...

    async def discard(self) -> None: ...


class ActorSession:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def start(self) -> str:
        return await self.actor.start.remote()

    async def restart(self) -> str:
        return await self.actor.restart.remote()

    async def logout(self) -> str:
        return await self.actor.logout.remote()

    async def stop(self, purge: bool) -> None:
        await self.actor.stop.remote(purge=purge)

    async def status(self) -> dict[str, Any]:
        return await self.actor.status.remote()

    def reopen(self, reason: str) -> None:
        self.actor.reopen.remote(reason)

    async def discard(self) -> None:
        ray.kill(self.actor, no_restart=True)


class GrainSession:
    def __init__(self, host: Any, ws: str, sid: str) -> None:
        self.host, self._ws, self._sid = host, ws, sid

    async def _call(self, op: str, *args: Any) -> Any:
        return await self.host.grain_call.remote(self._ws, self._sid, op, *args)

    async def start(self) -> str:
        return await self.host.activate.remote(self._ws, self._sid)

    async def restart(self) -> str:
        return await self._call("restart") or await self.start()

    async def logout(self) -> str:
        state = await self._call("logout")
        if state is None:
            raise SessionGone(f"{self._ws}/{self._sid} has no grain on its host")
        return state

    async def stop(self, purge: bool) -> None:
        await self._call("stop", purge)

    async def status(self) -> dict[str, Any]:
        status = await self._call("status")
        if status is None:
            raise SessionGone(f"{self._ws}/{self._sid} has no grain on its host")
        return status

    def reopen(self, reason: str) -> None:
        # A live grain follows its own page (a crash signal reconnects it); "reopen" only ever means its host
        # restarted without it. Reopening a grain the new host already brought back would close the page it
        # is opening and start again (measured: host kill -> connected 36.8 s with 10 sessions).
        self.host.activate.remote(self._ws, self._sid)

    async def discard(self) -> None:
        await self.host.deactivate.remote(self._ws, self._sid)
