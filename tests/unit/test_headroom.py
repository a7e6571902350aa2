"""Headroom and the contact log, read from the keys the senders write (embedded Redis)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.contact_log import DAY_S, ContactLog
from wa_ray.storage.headroom import headroom
from wa_ray.storage.pacing import PacingPolicy, PacingStore


async def test_a_contact_is_new_once_and_one_who_wrote_first_never(redis: aioredis.Redis) -> None:
    log = ContactLog(redis)
    assert await log.sent_to("ws", "s1", "a@c.us")
    assert not await log.sent_to("ws", "s1", "a@c.us")  # the first stamp stays
    await log.heard_from("ws", "s1", "b@c.us")
    assert not await log.sent_to("ws", "s1", "b@c.us")
    assert await log.new_in_day("ws", "s1") == 1
    await log.sent_to("ws", "s1", "old@c.us", at=time.time() - DAY_S - 5)  # outside the rolling day
    assert await log.new_in_day("ws", "s1") == 1
    assert not await log.is_new("ws", "s1", "old@c.us")


async def test_headroom_ranks_the_roomier_number_first(redis: aioredis.Redis) -> None:
    policy = PacingPolicy(per_minute=30, per_hour=1000)
    pacing = PacingStore(redis, policy)
    for n in range(10):
        await pacing.record("ws", "busy", f"m{n}")
    await pacing.record("ws", "idle", "m0")
    for n in range(3):
        await ContactLog(redis).sent_to("ws", "idle", f"{n}@c.us")
    rooms = await headroom(redis, "ws", ["busy", "idle", "none"], policy, daily_new_contacts=5)
    assert (rooms["busy"].minute, rooms["busy"].hour, rooms["busy"].new_contacts) == (20, 990, 5)
    assert (rooms["idle"].minute, rooms["idle"].hour, rooms["idle"].new_contacts) == (29, 999, 2)
    assert max(rooms.values(), key=lambda h: h.rank()).sid == "none"
    await redis.set(keys.session_paused("ws", "none"), "1")
    rooms = await headroom(redis, "ws", ["busy", "idle", "none"], policy, daily_new_contacts=5)
    assert rooms["none"].paused and rooms["none"].sends == 0
    assert max(rooms.values(), key=lambda h: h.rank()).sid == "idle"


async def test_unpaced_numbers_are_bounded_by_new_contacts_and_pauses_alone(redis: aioredis.Redis) -> None:
    paced = PacingPolicy(per_minute=30, per_hour=1000)
    for n in range(40):  # a full minute's window, which binds nothing with pacing off
        await PacingStore(redis, paced).record("ws", "busy", f"m{n}")
    await ContactLog(redis).sent_to("ws", "busy", "a@c.us")
    await redis.set(keys.session_paused("ws", "held"), "1")
    rooms = await headroom(redis, "ws", ["busy", "held"], PacingPolicy(enabled=False), daily_new_contacts=5)
    assert (rooms["busy"].minute, rooms["busy"].hour, rooms["busy"].new_contacts) == (1 << 30, 1 << 30, 4)
    assert rooms["held"].paused and not rooms["busy"].paused
    assert (await headroom(redis, "ws", ["busy"], paced, daily_new_contacts=5))["busy"].minute == 0
