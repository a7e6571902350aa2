"""GroupCommit (storage/group_commit.py), the mechanism under the ingress's Batcher and the webhook
dispatcher's FinishQueue; the Batcher against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from wa_ray.storage.batch import Batcher
from wa_ray.storage.group_commit import GroupCommit


async def test_what_arrives_during_a_flush_goes_in_the_next_one_and_each_gets_its_own_answer() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        await asyncio.sleep(0.05)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(flush)
    first = commit.submit(0)
    await asyncio.sleep(0.01)  # the first flush is on the wire
    rest = [commit.submit(i) for i in range(1, 6)]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert batches == [[0], [1, 2, 3, 4, 5]]
    assert results[0] == 0 and results[2] == 20 and results[4] == 40
    assert [str(r) for r in results if isinstance(r, Exception)] == ["odd 1", "odd 3", "odd 5"]


async def test_a_failed_flush_fails_its_batch_only_and_max_batch_cuts() -> None:
    calls = 0

    async def flush(items: list[str]) -> list[str | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return [s.upper() for s in items]

    commit: GroupCommit[str, str] = GroupCommit(flush, max_batch=2)
    futures = [commit.submit(s) for s in "abcd"]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [type(r) for r in results[:2]] == [ConnectionError, ConnectionError]
    assert results[2:] == ["C", "D"]


async def test_a_cancelled_flush_cancels_its_waiters() -> None:
    started = asyncio.Event()

    async def flush(items: list[int]) -> list[int | Exception]:
        started.set()
        await asyncio.sleep(10)
        return items

    commit: GroupCommit[int, int] = GroupCommit(flush)
    waiter = commit.submit(1)
    await started.wait()
    assert commit._flusher is not None
    commit._flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_the_batcher_pipelines_concurrent_commands_and_keeps_errors_apart(redis: aioredis.Redis) -> None:
    batcher = Batcher(redis)
    await redis.set("gc:str", "x")
    results = await asyncio.gather(batcher.command("set", "gc:a", "1"), batcher.command("incr", "gc:str"),
                                   batcher.command("get", "gc:a"), return_exceptions=True)
    assert results[0] is True and isinstance(results[1], aioredis.ResponseError) and results[2] == "1"
