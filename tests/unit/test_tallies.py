"""The tallies the message scripts keep: they move with the status in the same step, never twice."""

from __future__ import annotations


import redis.asyncio as aioredis

from wa_ray.storage import keys, tallies
from wa_ray.storage.messages import META, WEBJS, MessageStore, OutboundMessage


def _msg(mid: str, sid: str = "s1", campaign: str = "cmp_1", provider: str = WEBJS) -> OutboundMessage:
    return OutboundMessage(mid, "ws1", sid, "15550001", "hi", "bulk", provider, campaign=campaign)


async def test_campaign_counts_follow_each_status_once(redis: aioredis.Redis) -> None:
    store = MessageStore(redis)
    for n in range(3):
        await store.accept(_msg(f"msg_{n}"), f"cmp_1:{n}")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"s1": {"queued": 3}}
    assert await store.transition("msg_0", "ws1", "sending", expect=("queued",))
    assert await store.transition("msg_0", "ws1", "sent")
    assert not await store.transition("msg_0", "ws1", "sent")  # a repeat moves nothing, counts nothing
    assert await store.transition("msg_1", "ws1", "failed")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"s1": {"queued": 1, "sent": 1, "failed": 1}}
    assert await store.transition("msg_2", "ws1", "read")  # the read ack overtook sent and delivered
    day = await tallies.session_days(redis, "ws1", "s1", [tallies.day_of()])
    assert day[tallies.day_of()] == {"sent": 2.0, "delivered": 1.0, "read": 1.0, "failed": 1.0}


async def test_a_rerouted_message_moves_its_count_to_the_other_number(redis: aioredis.Redis) -> None:
    store = MessageStore(redis)
    # a campaign message on the Cloud API (its fallback template) that the failover hands back to a number
    await store.accept(_msg("msg_r", sid="", provider=META), None)
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"meta": {"queued": 1}}
    assert await store.reroute("msg_r", await store.record("ws1", "msg_r"), WEBJS, "s1", "test")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"s1": {"queued": 1}}
    assert await store.transition("msg_r", "ws1", "sent")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"s1": {"sent": 1}}
    assert (await tallies.session_days(redis, "ws1", "s1", [tallies.day_of()]))[tallies.day_of()] == {"sent": 1.0}


async def test_the_failover_never_moves_a_campaign_message_to_the_cloud_api(redis: aioredis.Redis) -> None:
    """Its text would go as free text (storage/messages.may_move); the campaign runner moves it instead."""
    store = MessageStore(redis)
    await store.accept(_msg("msg_c"), None)
    assert not await store.reroute("msg_c", await store.record("ws1", "msg_c"), META, "", "test")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_1") == {"s1": {"queued": 1}}
    assert (await store.record("ws1", "msg_c"))["provider"] == WEBJS


async def test_messages_outside_campaigns_touch_no_campaign_count(redis: aioredis.Redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_plain", campaign=""), None)
    assert await store.transition("msg_plain", "ws1", "sent")
    assert await redis.hlen(keys.campaign_counts("ws1")) == 0
    await tallies.bump(redis, "ws1", "s1", "received")
    await tallies.bump(redis, "ws1", "s1", "uptime_s", 1.5)
    day = (await tallies.session_days(redis, "ws1", "s1", [tallies.day_of()]))[tallies.day_of()]
    assert day == {"sent": 1.0, "received": 1.0, "uptime_s": 1.5}


async def test_forget_campaign_drops_only_its_counts(redis: aioredis.Redis) -> None:
    store = MessageStore(redis)
    await store.accept(_msg("msg_a", campaign="cmp_a"), None)
    await store.accept(_msg("msg_b", campaign="cmp_b"), None)
    await tallies.forget_campaign(redis, "ws1", "cmp_a")
    assert await tallies.campaign_counts(redis, "ws1", "cmp_a") == {}
    assert await tallies.campaign_counts(redis, "ws1", "cmp_b") == {"s1": {"queued": 1}}


async def test_a_reply_counts_once_for_the_campaign_that_wrote(redis: aioredis.Redis) -> None:
    from wa_ray.storage.campaign_replies import CampaignReplies

    replies = CampaignReplies(redis)
    assert await replies.note_reply("ws1", "s1", "15550001@c.us") is None  # no campaign wrote to them
    await replies.remember_recipient("ws1", "s1", "15550001@c.us", "cmp_9")
    assert await replies.note_reply("ws1", "s1", "15550001@c.us") == "cmp_9"
    assert await replies.note_reply("ws1", "s1", "15550001@c.us") is None  # the second message is no new reply
    assert await replies.note_reply("ws1", "s2", "15550001@c.us") is None  # another number was not written from
    assert await tallies.campaign_counts(redis, "ws1", "cmp_9") == {"s1": {"replied": 1}}
