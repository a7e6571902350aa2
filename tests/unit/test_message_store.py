from storage import keys
from storage.messages import MessageStore, OutboundMessage


def _msg(mid: str) -> OutboundMessage:
    return OutboundMessage(mid, "acme", "main", "15550002", "hi", "normal")


async def test_accept_is_durable_and_queued(redis) -> None:
    store = MessageStore(redis)
    mid, created = await store.accept(_msg("msg_1"), None)
    assert created and mid == "msg_1"
    assert (await store.get(mid))["status"] == "queued"
    assert await redis.xlen(keys.queue("acme", "main", "normal")) == 1
    assert await redis.xlen(keys.events("acme")) == 1


async def test_idempotency_key_returns_first_id_and_queues_once(redis) -> None:
    store = MessageStore(redis)
    first, _ = await store.accept(_msg("msg_a"), "order-42")
    again, created = await store.accept(_msg("msg_b"), "order-42")
    assert (first, again, created) == ("msg_a", "msg_a", False)
    assert await redis.xlen(keys.queue("acme", "main", "normal")) == 1
    assert await store.get("msg_b") is None


async def test_status_only_moves_forward(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_x"), None)
    assert await store.advance("msg_x", "sent")
    assert await store.advance("msg_x", "read")
    assert not await store.advance("msg_x", "delivered")  # a late ack never rewinds
    assert [h["status"] for h in (await store.get("msg_x"))["history"]] == ["queued", "sent", "read"]
