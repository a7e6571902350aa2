"""One blocking read that tells many stream consumers when to look.

A consumer that waits for new entries with a blocking XREADGROUP of its own holds a connection and
makes a round trip every block period, one per consumer, idle or not. With a consumer per session (the
session senders, actors/outbound.py) that is most of what an idle host asks of Redis. A `StreamWatch`
waits for all of them in one blocking XREAD instead: it keeps a cursor per watched stream (the last
entry id it has seen there) and sets the waiter's event when an entry past that cursor appears.

XREAD takes no lease and acknowledges nothing: who owns an entry is still decided by the consumer's
own XREADGROUP, so the watch only says *when* to look, never *what* is whose.

Invariants:

* an entry added to a watched stream after `watch()` returned sets that stream's event: the cursor
  starts at the stream's last generated id, read before `watch()` returns, and only moves past ids the
  watch has read (a wake may be spurious, never missing);
* a stream watched while a read is blocked joins at the next read: the read in flight returns within
  `block_ms`, and the next one starts from the cursor set at `watch()`, so nothing added meanwhile is
  missed, it is only seen up to `block_ms` late;
* the read loop runs while something is watched, and ends by itself when nothing is.

One watch reads keys of many workspaces in one command, so on a Redis Cluster it must be one watch per
hash slot (the keys' workspace tag).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

BLOCK_MS = 1000
READ_COUNT = 64  # entries per stream per read: a backlog moves the cursor in steps of this size
ERROR_PAUSE_S = 1.0


class StreamWatch:
    def __init__(self, redis: aioredis.Redis, *, block_ms: int = BLOCK_MS) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._cursors: dict[str, str] = {}  # stream -> the last entry id seen there
        self._waiters: dict[str, asyncio.Event] = {}  # stream -> the event its entries set
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # blocking reads made, for tests and the bench

    async def watch(self, streams: Sequence[str], wake: asyncio.Event) -> None:
        """Set `wake` whenever an entry is added to one of `streams` from now on (the streams exist)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_stream(stream)
            infos = await pipe.execute()
        for stream, info in zip(streams, infos):
            self._cursors[stream] = info["last-generated-id"]
            self._waiters[stream] = wake
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-watch")

    def unwatch(self, streams: Sequence[str], wake: asyncio.Event) -> None:
        """Stop setting `wake`; a stream watched since by someone else (a session's next sender) stays watched."""
        for stream in streams:
            if self._waiters.get(stream) is wake:
                del self._waiters[stream], self._cursors[stream]

    @property
    def watched(self) -> int:
        return len(self._cursors)

    async def close(self) -> None:
        self._cursors.clear()
        self._waiters.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._cursors:
            try:
                reply = await self._redis.xread(dict(self._cursors), count=READ_COUNT, block=self._block_ms)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarting: the waiters' own fallback reads go on meanwhile
                log.warning("stream watch: read failed; retrying", exc_info=True)
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            self.reads += 1
            for stream, items in reply or []:
                if stream in self._cursors and items:
                    self._cursors[stream] = items[-1][0]
                    self._waiters[stream].set()
