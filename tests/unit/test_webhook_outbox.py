"""The webhook dispatcher's Redis side, cheaper per event (#16): acknowledgements committed as a group, the
target's secret opened once per stored blob, the retry delays (embedded Redis)."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aioredis

from wa_ray.actors.webhook_dispatcher import backoff_s
from wa_ray.crypto import DecryptError, MasterKey
from wa_ray.storage import keys
from wa_ray.storage.outbox import Finished, FinishQueue, Outbox, RetryPolicy
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget


async def _pending(redis: aioredis.Redis, stream: str) -> int:
    return int((await redis.xpending(stream, keys.WEBHOOK_GROUP))["pending"])


async def _leased(redis: aioredis.Redis, ws: str, n: int) -> list[str]:
    """n events of `ws` read by the dispatcher's group and not acknowledged, each with an attempt counted."""
    stream = keys.events(ws)
    await redis.xgroup_create(stream, keys.WEBHOOK_GROUP, id="0", mkstream=True)
    ids = [await redis.xadd(stream, {"n": str(i)}) for i in range(n)]
    await redis.xreadgroup(keys.WEBHOOK_GROUP, "dispatcher", {stream: ">"})
    for entry_id in ids:
        await redis.hincrby(keys.webhook_attempts(ws), f"{stream}|{entry_id}", 1)
    return ids


async def test_finishes_settled_together_are_one_transaction_and_each_is_acked(redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    a, b = await _leased(redis, "wa", 5), await _leased(redis, "wb", 2)
    queue = FinishQueue(outbox)
    execs = int((await redis.info("commandstats")).get("cmdstat_exec", {}).get("calls", 0))
    outcomes = ["delivered", "delivered", "failed", "dropped", "delivered"]
    await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, o)) for i, o in zip(a, outcomes)),
                         *(queue.finish(Finished("wb", keys.events("wb"), i, "delivered")) for i in b))
    assert int((await redis.info("commandstats"))["cmdstat_exec"]["calls"]) == execs + 1
    assert await _pending(redis, keys.events("wa")) == 0 and await _pending(redis, keys.events("wb")) == 0
    assert not await redis.exists(keys.webhook_attempts("wa"), keys.webhook_attempts("wb"))
    assert await redis.hgetall(keys.webhook_stats()) == {"delivered": "5", "failed": "1", "dropped": "1"}
    assert await redis.xlen(keys.events("wa")) == 5  # the event stream keeps its entries (SSE reads it too)


async def test_a_replayed_dead_letter_is_deleted_from_the_replay_stream_when_finished(
        redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    await outbox.dead_letter("wa", {"id": "1-0", "type": "message.received"}, "max_attempts: http_5xx", 3, "5xx")
    assert await outbox.replay("wa") == 1
    replay = keys.webhook_replay("wa")
    [[_, [(entry_id, _)]]] = await redis.xreadgroup(keys.WEBHOOK_GROUP, "dispatcher", {replay: ">"})
    await FinishQueue(outbox).finish(Finished("wa", replay, entry_id, "delivered"))
    assert await redis.xlen(replay) == 0 and await _pending(redis, replay) == 0


async def test_a_failed_commit_fails_every_caller_and_acks_nothing(redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    ids = await _leased(redis, "wa", 2)
    await redis.set(keys.webhook_stats(), "not a hash")  # the HINCRBY of the transaction fails
    queue = FinishQueue(outbox)
    results = await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, "delivered")) for i in ids),
                                   return_exceptions=True)
    assert all(isinstance(r, aioredis.ResponseError) for r in results), results
    # MULTI/EXEC ran the other commands: what matters is that every caller heard of the failure, so each
    # entry is handled again (at least once), never counted as delivered while it silently stayed pending
    await redis.delete(keys.webhook_stats())
    await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, "delivered")) for i in ids))
    assert await _pending(redis, keys.events("wa")) == 0


async def test_the_secret_is_opened_once_per_stored_blob_and_a_change_is_read_at_once(
        redis: aioredis.Redis) -> None:
    store = WebhookConfigStore(redis, MasterKey(os.urandom(32)))
    await store.set("wa", WebhookTarget("http://127.0.0.1:9/a", "first-secret"))
    assert await store.get("wa") == WebhookTarget("http://127.0.0.1:9/a", "first-secret")
    assert len(store._opened) == 1
    assert await store.get("wa") == WebhookTarget("http://127.0.0.1:9/a", "first-secret")
    assert len(store._opened) == 1  # the same blob: not opened again
    await store.set("wa", WebhookTarget("http://127.0.0.1:9/b", "second-secret"))
    assert await store.get("wa") == WebhookTarget("http://127.0.0.1:9/b", "second-secret")
    await redis.hset(keys.webhook("wa"), "url", "http://127.0.0.1:9/elsewhere")  # edited in Redis: bound to the URL
    with pytest.raises(DecryptError):
        await store.get("wa")
    await redis.delete(keys.webhook("wa"))
    assert await store.get("wa") is None  # deleted: gone at once, whatever was opened before


def test_retries_back_off_exponentially_to_the_cap_with_up_to_one_base_of_jitter() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=3.0)
    for retry, floor in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        delays = [backoff_s(policy, retry) for _ in range(200)]
        assert floor <= min(delays) and max(delays) <= floor + 0.5
        assert max(delays) - min(delays) > 0.1  # jittered
