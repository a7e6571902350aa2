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

On a Redis Cluster one XREAD may only name streams of one hash slot (one workspace: storage/keys.py), so the
watch runs one read loop per slot there, each blocking on its own slot's streams. The loops never cancel one
another: XREAD leases nothing, so cancelling one would be safe, but it would also cost its connection (redis-py
drops a connection whose reply is pending), and a loop left blocked is what the next wake needs anyway. On a
single Redis slots do not matter: one loop reads every stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from wa_ray.storage.redis_client import RedisClient, is_cluster_client
from wa_ray.storage.slots import slot_of

log = logging.getLogger(__name__)

BLOCK_MS = 1000
READ_COUNT = 64  # entries per stream per read: a backlog moves the cursor in steps of this size
ERROR_PAUSE_S = 1.0
ONE_SERVER = -1  # the only read loop's key on a single Redis


class StreamWatch:
    def __init__(self, redis: RedisClient, *, block_ms: int = BLOCK_MS) -> None:
        self._redis = redis
        self._block_ms = block_ms
        self._by_slot = is_cluster_client(redis)
        self._cursors: dict[int, dict[str, str]] = {}  # read loop -> stream -> the last entry id seen there
        self._waiters: dict[str, asyncio.Event] = {}  # stream -> the event its entries set
        self._tasks: dict[int, asyncio.Task[None]] = {}  # read loop -> its task
        self.reads = 0  # blocking reads made, for tests and the bench

    def _loop_of(self, stream: str) -> int:
        return slot_of(stream) if self._by_slot else ONE_SERVER

    async def watch(self, streams: Sequence[str], wake: asyncio.Event) -> None:
        """Set `wake` whenever an entry is added to one of `streams` from now on. A stream that does not
        exist yet wakes at its first entry."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_stream(stream)
            infos = await pipe.execute(raise_on_error=False)
        for stream, info in zip(streams, infos):
            if isinstance(info, Exception):
                if "no such key" not in str(info).lower():
                    raise info
                info = {"last-generated-id": "0-0"}
            self._cursors.setdefault(self._loop_of(stream), {})[stream] = info["last-generated-id"]
            self._waiters[stream] = wake
        loop = asyncio.get_running_loop()
        for key in self._cursors:
            task = self._tasks.get(key)
            if task is None or task.done():
                self._tasks[key] = loop.create_task(self._run(key), name=f"stream-watch:{key}")

    def unwatch(self, streams: Sequence[str], wake: asyncio.Event) -> None:
        """Stop setting `wake`; a stream watched since by someone else (a session's next sender) stays watched."""
        for stream in streams:
            if self._waiters.get(stream) is wake:
                del self._waiters[stream]
                key = self._loop_of(stream)
                cursors = self._cursors.get(key, {})
                cursors.pop(stream, None)
                if not cursors:
                    self._cursors.pop(key, None)  # its loop ends after its read in flight

    @property
    def watched(self) -> int:
        return sum(len(cursors) for cursors in self._cursors.values())

    @property
    def running(self) -> int:
        """Read loops still running (one per slot watched on a cluster, at most one on a single Redis)."""
        return sum(not task.done() for task in self._tasks.values())

    async def close(self) -> None:
        self._cursors.clear()
        self._waiters.clear()
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: int) -> None:
        while cursors := self._cursors.get(key):
            try:
                reply = await self._redis.xread(dict(cursors), count=READ_COUNT, block=self._block_ms)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarting: the waiters' own fallback reads go on meanwhile
                log.warning("stream watch: read failed; retrying", exc_info=True)
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            self.reads += 1
            cursors = self._cursors.get(key, {})  # as it is now: streams may have come or gone during the read
            for stream, items in reply or []:
                if stream in cursors and items:
                    cursors[stream] = items[-1][0]
                    self._waiters[stream].set()
        if self._tasks.get(key) is asyncio.current_task():
            del self._tasks[key]
