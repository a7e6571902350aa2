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

On a Redis Cluster the pipeline sends each command to the node of its key's slot (a script to the slot of
its keys) and SCRIPT LOAD goes to every primary, so the NOSCRIPT path holds there too. One thing differs: the
cluster pipeline refuses a script whose keys span slots while it routes the batch, before sending anything,
which would fail every neighbour; such a call is refused on its own here before it joins a batch (as is a
command the pipeline refuses to queue, e.g. MGET on a cluster).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from wa_ray.storage.group_commit import GroupCommit
from wa_ray.storage.redis_client import RedisClient, is_cluster_client
from wa_ray.storage.slots import slot_of


Command = tuple[str, tuple[Any, ...], dict[str, Any]]


class Batcher:
    def __init__(self, redis: RedisClient, max_batch: int = 512) -> None:
        self._redis = redis
        self._by_slot = is_cluster_client(redis)
        self._commit: GroupCommit[Command, Any] = GroupCommit(self._pipeline, max_batch)

    def command(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue `pipeline.<method>(*args, **kwargs)`; the future gets its reply (or its error)."""
        return self._commit.submit((method, args, kwargs))

    # the few commands of the hot path, with redis-py's signatures (a Script's `client=` can be a Batcher)
    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        if self._by_slot and numkeys > 1 and len({slot_of(key) for key in keys_and_args[:numkeys]}) > 1:
            raise RedisClusterException("EVALSHA - all keys must map to the same key slot")
        return await self.command("evalsha", sha, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> str:
        return await self._redis.script_load(script)

    async def hgetall(self, name: str) -> dict[str, str]:
        return await self.command("hgetall", name)

    async def xadd(self, name: str, fields: dict[str, Any], **kwargs: Any) -> str:
        return await self.command("xadd", name, fields, **kwargs)

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        results: list[Any] = [None] * len(commands)
        queued: list[int] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for i, (method, args, kwargs) in enumerate(commands):
                try:
                    getattr(pipe, method)(*args, **kwargs)
                except (RedisError, RedisClusterException) as exc:  # refused as it is queued (bad arguments, a command a cluster pipeline
                    results[i] = exc  # blocks): that caller's error alone
                else:
                    queued.append(i)
            replies = await pipe.execute(raise_on_error=False) if queued else []
        for i, reply in zip(queued, replies, strict=True):
            results[i] = reply
        return results
