"""storage/messages.py `start_accepts` against embedded Redis: the batch script is the single accept, message
by message, in order, across chunks; an Idempotency-Key repeats within a batch and across calls as it does for
single accepts; a fresh Redis (no script loaded) keeps the order too; chunks run in the order they were
started, whatever ran between them."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.messages import ACCEPT_CHUNK, WEBJS, Accepted, MessageStore, OutboundMessage


def _msg(n: int) -> OutboundMessage:
    return OutboundMessage(f"msg_{n:016x}", "wa", "s1", "15550001111", f"text {n}", "normal", WEBJS)


async def accept_batch(store: MessageStore, items: list) -> list:
    """As the batch route accepts (serve_app/batch_send_api.py): the script loaded, the chunks started in order,
    their results read at the end."""
    await store.load_accept_many()
    chunks = [store.start_accepts(items[start:start + ACCEPT_CHUNK]) for start in range(0, len(items), ACCEPT_CHUNK)]
    return [result for chunk in chunks for result in await chunk]


async def test_a_batch_is_the_single_accepts_in_order_across_chunks(redis: aioredis.Redis) -> None:
    await redis.script_flush()  # as after a Redis start: the order must hold all the same
    store = MessageStore(redis, batch=Batcher(redis))
    n = ACCEPT_CHUNK * 2 + 7
    items = [(_msg(i), f"k-{i}" if i % 3 == 0 else None, None) for i in range(n)]
    got = await accept_batch(store, items)
    assert got == [Accepted(m.message_id, True) for m, _, _ in items]
    queued = [f["m"] for _, f in await redis.xrange(keys.queue("wa", "s1", "normal"))]
    assert queued == [m.message_id for m, _, _ in items]
    single = MessageStore(redis, batch=Batcher(redis))
    await single.accept(_msg(10_000), None)
    one = await redis.hgetall(keys.message("wa", _msg(10_000).message_id))
    many = await redis.hgetall(keys.message("wa", _msg(1).message_id))
    assert one.keys() == many.keys() and many["text"] == "text 1" and many["status"] == "queued"
    assert await redis.lrange(keys.message_history("wa", _msg(1).message_id), 0, -1)


async def test_idempotency_keys_repeat_within_a_batch_and_across_calls(redis: aioredis.Redis) -> None:
    store = MessageStore(redis, batch=Batcher(redis))
    first = await accept_batch(store, [(_msg(1), "same", None), (_msg(2), "same", None), (_msg(3), "other", None)])
    assert first[0] == Accepted(_msg(1).message_id, True)
    assert first[1] == Accepted(_msg(1).message_id, False, same_request=False), "the key came with another text"
    again = await accept_batch(store, [(_msg(4), "other", None)])
    assert again == [Accepted(_msg(3).message_id, False, same_request=False)]
    repeat = await accept_batch(store, [(OutboundMessage(_msg(9).message_id, "wa", "s1", "15550001111", "text 3",
                                                       "normal", WEBJS), "other", None)])
    assert repeat == [Accepted(_msg(3).message_id, False, same_request=True)], "the same message: a repeat"
    assert await redis.xlen(keys.queue("wa", "s1", "normal")) == 2


async def test_chunks_started_between_other_awaits_run_in_the_order_they_were_started(redis: aioredis.Redis) -> None:
    """The batch route starts each chunk as soon as its items are routed, awaiting other work (and other
    requests' commands on the shared pipeline) in between, and reads the results only at the end."""
    batcher = Batcher(redis)
    store = MessageStore(redis, batch=batcher)
    await store.load_accept_many()
    chunks, expected = [], []
    for c in range(4):
        items = [(_msg(c * 1000 + i), f"order-{c}-{i}", None) for i in range(ACCEPT_CHUNK)]
        expected += [m.message_id for m, _, _ in items]
        chunks.append(store.start_accepts(items))
        await asyncio.gather(*(batcher.hgetall(f"other:{c}:{i}") for i in range(20)), asyncio.sleep(0.001 * c))
    results = [r for chunk in chunks for r in await chunk]
    assert results == [Accepted(mid, True) for mid in expected]
    queued = [f["m"] for _, f in await redis.xrange(keys.queue("wa", "s1", "normal"))]
    assert queued == expected


async def test_a_chunk_whose_script_fails_answers_each_of_its_items_with_the_error(redis: aioredis.Redis) -> None:
    store = MessageStore(redis, batch=Batcher(redis))
    await store.load_accept_many()
    await redis.set(keys.queue("wa", "s1", "normal"), "not a stream")  # the script's XADD fails: WRONGTYPE
    got = await store.start_accepts([(_msg(1), "a", None), (_msg(2), "b", None)])
    assert len(got) == 2 and all(isinstance(r, ResponseError) for r in got), got


async def test_one_call_takes_the_messages_of_one_workspace(redis: aioredis.Redis) -> None:
    """Its keys share the workspace's hash slot and its events stream: a message of another workspace in the
    same call would be written beside the wrong events (and fail on a Redis Cluster)."""
    store = MessageStore(redis, batch=Batcher(redis))
    other = OutboundMessage("msg_00000000000000ff", "other", "s1", "15550001111", "text", "normal", WEBJS)
    with pytest.raises(ValueError, match="one workspace"):
        store.start_accepts([(_msg(1), None, None), (other, None, None)])
    assert await redis.exists(keys.message("wa", _msg(1).message_id)) == 0
