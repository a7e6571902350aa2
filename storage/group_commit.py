"""Group commit: what callers submit while one flush is on the wire goes out together in the next flush.

The mechanism under the ingress's command `Batcher` (storage/batch.py) and the webhook dispatcher's
`FinishQueue` (storage/outbox.py), which differ only in what a flush does. A lone submission waits for
nothing: it is flushed on the next turn of the event loop.

Invariants: each submitter gets its own result, or its own error when the flush answers an exception for
its item; an exception of the flush itself fails every item of that batch (what each caller would have
seen alone); a flush cancelled under it (the loop closing) cancels its batch's futures, so nobody waits
for an answer that will not come. A submitter that went away does not stop its item from being flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
                 max_batch: int | None = None) -> None:
        """`flush(items)` answers one result (or an exception object) per item, in order."""
        self._flush_batch = flush
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._run())
        return done

    async def _run(self) -> None:
        while self._pending:
            cut = len(self._pending) if self._max is None else self._max
            batch, self._pending = self._pending[:cut], self._pending[cut:]
            try:
                results = await self._flush_batch([item for item, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except BaseException:
                for _, done in batch:
                    if not done.done():
                        done.cancel()
                raise
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)
