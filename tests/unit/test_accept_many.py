"""storage/messages.py `accept_many` against embedded Redis: the batch script is the single accept, message by
message, in order, across chunks; an Idempotency-Key repeats within a batch and across calls as it does for
single accepts; a fresh Redis (no script loaded) keeps the order too."""

from __future__ import annotations

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.messages import ACCEPT_CHUNK, WEBJS, Accepted, MessageStore, OutboundMessage


def _msg(n: int) -> OutboundMessage:
    return OutboundMessage(f"msg_{n:016x}", "wa", "s1", "15550001111", f"text {n}", "normal", WEBJS)


async def test_a_batch_is_the_single_accepts_in_order_across_chunks(redis: aioredis.Redis) -> None:
    await redis.script_flush()  # as after a Redis start: the order must hold all the same
    store = MessageStore(redis, batch=Batcher(redis))
    n = ACCEPT_CHUNK * 2 + 7
    items = [(_msg(i), f"k-{i}" if i % 3 == 0 else None, None) for i in range(n)]
    got = await store.accept_many(items)
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
    first = await store.accept_many([(_msg(1), "same", None), (_msg(2), "same", None), (_msg(3), "other", None)])
    assert first[0] == Accepted(_msg(1).message_id, True)
    assert first[1] == Accepted(_msg(1).message_id, False, same_request=False), "the key came with another text"
    again = await store.accept_many([(_msg(4), "other", None)])
    assert again == [Accepted(_msg(3).message_id, False, same_request=False)]
    repeat = await store.accept_many([(OutboundMessage(_msg(9).message_id, "wa", "s1", "15550001111", "text 3",
                                                       "normal", WEBJS), "other", None)])
    assert repeat == [Accepted(_msg(3).message_id, False, same_request=True)], "the same message: a repeat"
    assert await redis.xlen(keys.queue("wa", "s1", "normal")) == 2
