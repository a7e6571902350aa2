"""Group commit for the ingress's hot path: the single commands of concurrent requests, one pipeline.

Each POST /messages makes a few single-command round trips (read the API key, burn the nonce and
charge the rate limit, the accept script, the audit entry). With redis-py each of them pays for a
pool checkout, a socket write, a wake-up on the reply and a release; at a few hundred requests per
second that bookkeeping cost more CPU than the commands. `Batcher` queues the commands issued while
a batch is on the wire and sends them all as the next pipeline (transaction=False: no MULTI, the
commands are independent, each keeps its own atomicity, a script stays one atomic step), so the
per-command overhead shrinks as load grows, which is when it matters. A lone request waits for
nothing: its command is sent on the next turn of the event loop.

Each caller gets its own reply or its own error (a script's error does not fail its neighbours);
a connection error fails every command of that batch, which is what the callers would have seen
one by one. Scripts go through `Script.__call__(..., client=batcher)`: a NOSCRIPT reply loads the
script and retries it, as redis-py does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from wa_ray.storage.group_commit import GroupCommit


Command = tuple[str, tuple[Any, ...], dict[str, Any]]


class Batcher:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 512) -> None:
        self._redis = redis
        self._commit: GroupCommit[Command, Any] = GroupCommit(self._pipeline, max_batch)

    def command(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue `pipeline.<method>(*args, **kwargs)`; the future gets its reply (or its error)."""
        return self._commit.submit((method, args, kwargs))

    # the few commands of the hot path, with redis-py's signatures (a Script's `client=` can be a Batcher)
    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.command("evalsha", sha, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> str:
        return await self._redis.script_load(script)

    async def hgetall(self, name: str) -> dict[str, str]:
        return await self.command("hgetall", name)

    async def xadd(self, name: str, fields: dict[str, Any], **kwargs: Any) -> str:
        return await self.command("xadd", name, fields, **kwargs)

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for method, args, kwargs in commands:
                getattr(pipe, method)(*args, **kwargs)
            return list(await pipe.execute(raise_on_error=False))
