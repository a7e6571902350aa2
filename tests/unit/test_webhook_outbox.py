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


async def test_finishes_settled_together_are_one_round_trip_and_each_is_acked(redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    a, b = await _leased(redis, "wa", 5), await _leased(redis, "wb", 2)
    queue = FinishQueue(outbox)
    [warm] = await _leased(redis, "wc", 1)  # the server learns the script (a first EVALSHA answers NOSCRIPT)
    await queue.finish(Finished("wc", keys.events("wc"), warm, "delivered"))
    before = await redis.info("commandstats")
    outcomes = ["delivered", "delivered", "failed", "dropped", "delivered"]
    await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, o)) for i, o in zip(a, outcomes)),
                         *(queue.finish(Finished("wb", keys.events("wb"), i, "delivered")) for i in b))
    after = await redis.info("commandstats")
    assert after["cmdstat_evalsha"]["calls"] == before["cmdstat_evalsha"]["calls"] + 2  # one script a workspace
    assert after.get("cmdstat_exec") == before.get("cmdstat_exec")  # and no transaction across them
    assert await _pending(redis, keys.events("wa")) == 0 and await _pending(redis, keys.events("wb")) == 0
    assert not await redis.exists(keys.webhook_attempts("wa"), keys.webhook_attempts("wb"))
    assert await redis.hgetall(keys.webhook_stats()) == {"delivered": "6", "failed": "1", "dropped": "1"}
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


async def test_a_failed_step_fails_its_callers_only_and_a_retry_acks_them(redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    ids, other = await _leased(redis, "wa", 2), await _leased(redis, "wb", 1)
    await redis.set(keys.webhook_stats(), "not a hash")  # the HINCRBY of the outcome fails
    queue = FinishQueue(outbox)
    results = await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, "delivered")) for i in ids),
                                   return_exceptions=True)
    assert all(isinstance(r, aioredis.ResponseError) for r in results), results
    # what matters is that every caller heard of the failure, so each entry is handled again (at least once),
    # never counted as delivered while it silently stayed pending; a second finish is harmless
    await redis.delete(keys.webhook_stats())
    await redis.set(keys.webhook_attempts("wb"), "not a hash")  # now wb's script fails, wa's goes through
    results = await asyncio.gather(*(queue.finish(Finished("wa", keys.events("wa"), i, "delivered")) for i in ids),
                                   queue.finish(Finished("wb", keys.events("wb"), other[0], "delivered")),
                                   return_exceptions=True)
    assert results[:2] == [None, None] and isinstance(results[2], aioredis.ResponseError), results
    assert await _pending(redis, keys.events("wa")) == 0


async def test_a_script_the_server_lost_is_loaded_again(redis: aioredis.Redis) -> None:
    """A pipeline's EVALSHA answered NOSCRIPT (a node restarted or failed over) is sent again once loaded:
    a Redis Cluster pipeline would not do it by itself."""
    outbox = Outbox(redis, RetryPolicy())
    ids = await _leased(redis, "wa", 3)
    await redis.script_flush()
    assert await outbox.finish_many([Finished("wa", keys.events("wa"), i, "delivered") for i in ids]) == [None] * 3
    assert await _pending(redis, keys.events("wa")) == 0 and not await redis.exists(keys.webhook_attempts("wa"))


async def test_a_delivery_named_under_another_workspace_is_refused_alone(redis: aioredis.Redis) -> None:
    """Its keys would span two slots: on a Redis Cluster the pipeline would refuse the whole group."""
    outbox = Outbox(redis, RetryPolicy())
    ids = await _leased(redis, "wa", 2)
    results = await outbox.finish_many([Finished("wa", keys.events("wa"), ids[0], "delivered"),
                                        Finished("wb", keys.events("wa"), ids[1], "delivered")])
    assert results[0] is None and isinstance(results[1], ValueError)
    assert await _pending(redis, keys.events("wa")) == 1


async def test_endpoint_queues_lose_settled_entries_and_keep_the_rest(redis: aioredis.Redis) -> None:
    outbox = Outbox(redis, RetryPolicy())
    queue_stream = keys.webhook_queue("wa", "ep1")
    await redis.xgroup_create(queue_stream, keys.WEBHOOK_GROUP, id="0", mkstream=True)
    ids = [await redis.xadd(queue_stream, {"ev": str(i)}) for i in range(1200)]  # more than one Lua chunk
    await redis.xreadgroup(keys.WEBHOOK_GROUP, "dispatcher", {queue_stream: ">"})
    await redis.hset(keys.webhook_attempts("wa"), mapping={f"{queue_stream}|{i}": 1 for i in ids})
    settled = [Finished("wa", queue_stream, i, "delivered", delete=True) for i in ids[:1100]]
    assert await outbox.finish_many(settled) == [None] * 1100
    assert await redis.xlen(queue_stream) == 100 and await _pending(redis, queue_stream) == 100
    assert await redis.hlen(keys.webhook_attempts("wa")) == 100


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
