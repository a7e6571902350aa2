"""The sessions registry: where each session lives and what state it is in.

A session's record and its workspace's index share the workspace's slot and change in one transaction; the
global indexes (`keys.workspaces`, `keys.all_sessions`) are written outside it, added before a register and
removed after a remove, so at worst they name a session without a record, and their readers read the record.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from wa_ray.states import SessionState
from wa_ray.storage import keys, uptime

# HSET the new state's fields; return the state and `since` it replaces (one atomic step)
_SWAP_STATE = """
local previous = redis.call('HMGET', KEYS[1], 'state', 'since')
redis.call('HSET', KEYS[1], unpack(ARGV))
return previous
"""

# a session still recorded `connected` (ARGV[1]) starts a new stretch at ARGV[2]; return the `since` it ends
_RESTART_STRETCH = """
local state, since = unpack(redis.call('HMGET', KEYS[1], 'state', 'since'))
if state ~= ARGV[1] or not since then return false end
redis.call('HSET', KEYS[1], 'since', ARGV[2])
return since
"""


class SessionRegistry:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._swap_state = redis.register_script(_SWAP_STATE)
        self._restart_stretch = redis.register_script(_RESTART_STRETCH)

    async def register(self, ws: str, sid: str, node_id: str) -> None:
        await self._redis.sadd(keys.workspaces(), ws)
        await self._redis.sadd(keys.all_sessions(), f"{ws}/{sid}")
        async with self._redis.pipeline(transaction=True) as pipe:  # the workspace's slot
            pipe.sadd(keys.session_index(ws), sid)
            pipe.hsetnx(keys.session(ws, sid), "created_at", time.time())
            pipe.hset(keys.session(ws, sid), mapping={"workspace_id": ws, "session_id": sid, "node_id": node_id})
            pipe.hsetnx(keys.session(ws, sid), "restarts", 0)
            await pipe.execute()

    async def set_state(self, ws: str, sid: str, state: str, **fields: Any) -> None:
        """Move to `state`. Leaving `connected` (or re-entering it) credits the stretch since `since` to the
        days' `uptime_s` (storage/uptime.py): the old state and `since` are read in the same step as the
        write, so two racing transitions never claim one stretch twice."""
        now = time.time()
        mapping = {"state": state, "since": now, **{k: "" if v is None else str(v) for k, v in fields.items()}}
        if state == SessionState.CONNECTED.value:
            mapping["last_connected_at"] = now  # the numbers' listing shows when each last came online
        flat = [str(x) for kv in mapping.items() for x in kv]
        previous, since = await self._swap_state(keys=[keys.session(ws, sid)], args=flat)
        if previous == SessionState.CONNECTED.value and since:
            await uptime.add_stretch(self._redis, ws, sid, float(since), now)

    async def end_stretch_at(self, ws: str, sid: str, ended: float | None) -> None:
        """A session still recorded `connected` whose service stopped (its page went with it): credit its
        stretch only up to `ended`, when the service was last seen alive, and count from now on as if it had
        just reconnected, so the restore's own state change does not credit the time the service was down.
        `ended` None (never seen alive: data from before this was written) credits nothing."""
        now = time.time()
        since = await self._restart_stretch(keys=[keys.session(ws, sid)], args=[SessionState.CONNECTED.value, now])
        if since and ended is not None:
            await uptime.add_stretch(self._redis, ws, sid, float(since), min(ended, now))

    async def update(self, ws: str, sid: str, **fields: Any) -> None:
        await self._redis.hset(keys.session(ws, sid), mapping={k: "" if v is None else str(v) for k, v in fields.items()})

    async def get(self, ws: str, sid: str) -> dict[str, str] | None:
        record = await self._redis.hgetall(keys.session(ws, sid))
        return record or None

    async def list(self, ws: str) -> list[dict[str, str]]:
        """Every session record of the workspace, by id; two round trips whatever their number (the provider
        snapshot reads this every second per workspace and Ingress replica)."""
        sids = sorted(await self._redis.smembers(keys.session_index(ws)))
        if not sids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(keys.session(ws, sid))
            records = await pipe.execute()
        return [rec for rec in records if rec]

    async def all(self) -> list[tuple[str, str]]:
        return [tuple(x.split("/", 1)) for x in await self._redis.smembers(keys.all_sessions())]  # type: ignore[misc]

    async def remove(self, ws: str, sid: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:  # the workspace's slot
            pipe.srem(keys.session_index(ws), sid)
            pipe.delete(keys.session(ws, sid))
            await pipe.execute()
        await self._redis.srem(keys.all_sessions(), f"{ws}/{sid}")

    async def incr_restarts(self, ws: str, sid: str) -> int:
        return int(await self._redis.hincrby(keys.session(ws, sid), "restarts", 1))
