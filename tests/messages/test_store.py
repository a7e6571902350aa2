"""The message store on a real Redis: durable accept, idempotency, forward-only statuses, one failover."""

from __future__ import annotations

from wa_ray.storage import keys
from wa_ray.storage.messages import META, WEBJS, MessageStore, OutboundMessage, fingerprint
from wa_ray.events import MESSAGE_FAILED, Event


def _msg(mid: str, provider: str = WEBJS, text: str = "hi") -> OutboundMessage:
    return OutboundMessage(mid, "acme", "main", "15550002", text, "normal", provider)


async def test_accept_writes_record_history_queue_and_event_together(redis) -> None:
    store = MessageStore(redis)
    accepted = await store.accept(_msg("msg_1"), None)
    assert accepted.created and accepted.message_id == "msg_1"
    record = await store.get("acme", "msg_1")
    assert record["status"] == "queued" and record["provider"] == WEBJS
    assert [h["status"] for h in record["history"]] == ["queued"]
    [(entry_id, fields)] = await redis.xrange(keys.queue("acme", "main", "normal"))
    assert fields == {"m": "msg_1"}
    [(_, event)] = await redis.xrange(keys.events("acme"))
    assert '"message.queued"' in event["e"]
    assert 0 < await redis.ttl(keys.message("acme", "msg_1")) <= 30 * 24 * 3600


async def test_cloud_messages_queue_per_workspace(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_c", META), None)
    assert await redis.xlen(keys.cloud_queue("acme", "normal")) == 1
    assert not await redis.exists(keys.queue("acme", "main", "normal"))


async def test_idempotency_key_returns_first_id_and_queues_once(redis) -> None:
    store = MessageStore(redis)
    fp = fingerprint("15550002", "hi", "normal", None)
    first = await store.accept(_msg("msg_a"), "order-42", fp)
    again = await store.accept(_msg("msg_b"), "order-42", fp)
    assert (first.message_id, again.message_id, again.created, again.same_request) == ("msg_a", "msg_a", False, True)
    assert await redis.xlen(keys.queue("acme", "main", "normal")) == 1
    assert await store.get("acme", "msg_b") is None
    assert 23 * 3600 < await redis.ttl(keys.idempotency("acme", "order-42")) <= 24 * 3600
    other = await store.accept(_msg("msg_c", text="something else"), "order-42", fingerprint("1", "x", "n", None))
    assert other.message_id == "msg_a" and not other.same_request


async def test_status_only_moves_forward(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_x"), None)
    assert await store.transition("msg_x", "acme", "sent")
    assert await store.transition("msg_x", "acme", "read")
    assert not await store.transition("msg_x", "acme", "delivered")  # a late ack never rewinds
    assert not await store.transition("msg_x", "acme", "failed")  # read is final
    assert [h["status"] for h in (await store.get("acme", "msg_x"))["history"]] == ["queued", "sent", "read"]


async def test_transition_guards_and_publishes_only_when_it_moves(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_g"), None)
    assert not await store.transition("msg_g", "acme", "sending", expect=("queued",), provider=META)
    assert await store.transition("msg_g", "acme", "sending", expect=("queued",), provider=WEBJS,
                                  fields={"wa_key": "K1"})
    assert not await store.transition("msg_g", "acme", "sending", expect=("queued",))  # a racing sender loses
    before = await redis.xlen(keys.events("acme"))
    event = Event(MESSAGE_FAILED, "acme", "main", {"message_id": "msg_g"})
    assert await store.transition("msg_g", "acme", "failed", fields={"reason": "boom"}, event=event)
    assert not await store.transition("msg_g", "acme", "failed", event=event)
    assert await redis.xlen(keys.events("acme")) == before + 1
    record = await store.record("acme", "msg_g")
    assert (record["wa_key"], record["reason"]) == ("K1", "boom")


async def test_reroute_moves_once_and_acks_the_old_entry(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_r"), None)
    stream = keys.queue("acme", "main", "normal")
    await store.ensure_group([stream])
    [[_, [(entry_id, _)]]] = await redis.xreadgroup(keys.QUEUE_GROUP, "c1", {stream: ">"})
    record = await store.record("acme", "msg_r")
    assert await store.reroute("msg_r", record, META, "", "session down", from_stream=stream, entry_id=entry_id)
    assert (await redis.xpending(stream, keys.QUEUE_GROUP))["pending"] == 0
    assert await redis.xlen(keys.cloud_queue("acme", "normal")) == 1
    moved = await store.record("acme", "msg_r")
    assert (moved["provider"], moved["status"], moved["failover"]) == (META, "queued", "1")
    assert not await store.reroute("msg_r", moved, WEBJS, "main", "again")  # only once
    assert [h.get("rerouted_from") for h in (await store.get("acme", "msg_r"))["history"]] == [None, WEBJS]


async def test_a_message_is_found_only_under_its_own_workspace(redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_w"), None)
    assert await redis.exists(keys.message("acme", "msg_w"), keys.message_history("acme", "msg_w")) == 2
    assert await store.get("other", "msg_w") is None and await store.record("other", "msg_w") == {}
    assert not await store.set_media("other", "msg_w", "med_x")  # never writes into another workspace's record
    assert not await redis.exists(keys.message("other", "msg_w"))
    assert (await store.record("acme", "msg_w"))["workspace_id"] == "acme"
