"""The numbers' storage on a real Redis (the `redis` fixture's own server): plan limits never go over their max
under concurrency, a number's slot is reserved atomically, the primary is cleared only by itself, and the
default sender's pure rule (primary, then headroom, then id)."""

from __future__ import annotations

import asyncio
import time

import pytest

from wa_ray.serve_app.provider_selector import Snapshot
from wa_ray.storage import keys
from wa_ray.storage.headroom import Headroom
from wa_ray.storage.numbers import NumberStore, ranked
from wa_ray.storage.pacing import PacingPolicy
from wa_ray.storage.plan_limits import DAY_COUNTER_TTL_S, PlanLimits, PlanLimitStore
from wa_ray.storage.tallies import day_of


async def test_limits_round_trip_and_null_is_unlimited(redis) -> None:
    store = PlanLimitStore(redis)
    assert await store.get("w1") == PlanLimits()
    await store.set("w1", PlanLimits(3, 1000))
    assert await store.get("w1") == PlanLimits(3, 1000)
    await store.set("w1", PlanLimits(None, 1000))
    assert await store.get("w1") == PlanLimits(None, 1000)
    await redis.hset(keys.plan_limits("w1"), "max_numbers", "nan")  # a stored value that is not a bound int
    assert (await store.get("w1")).max_numbers is None


async def test_no_daily_limit_counts_nothing(redis) -> None:
    charge = await PlanLimitStore(redis).charge_messages("w2", 5)
    assert charge.ok and charge.max is None
    assert not await redis.exists(keys.plan_messages("w2", day_of()))


async def test_concurrent_charges_never_pass_the_max(redis) -> None:
    store = PlanLimitStore(redis)
    await store.set("w3", PlanLimits(None, 50))
    results = await asyncio.gather(*(PlanLimitStore(redis).charge_messages("w3", 3) for _ in range(40)))
    taken = [r for r in results if r.ok]
    assert len(taken) == 16 and await store.messages_today("w3") == 48, "16 * 3 = 48 <= 50 < 17 * 3"
    refused = [r for r in results if not r.ok]
    assert all((r.current, r.max) == (48, 50) for r in refused)
    assert (await store.charge_messages("w3", 2)).ok, "what is left may still be charged"
    assert not (await store.charge_messages("w3", 1)).ok
    ttl = await redis.ttl(keys.plan_messages("w3", day_of()))
    assert 0 < ttl <= DAY_COUNTER_TTL_S


async def test_days_are_counted_apart_and_refunds_stop_at_zero(redis) -> None:
    store = PlanLimitStore(redis)
    await store.set("w4", PlanLimits(None, 1))
    today, tomorrow = time.time(), time.time() + 86_400
    assert (await store.charge_messages("w4", 1, now=today)).ok
    assert not (await store.charge_messages("w4", 1, now=today)).ok
    assert (await store.charge_messages("w4", 1, now=tomorrow)).ok, "a new UTC day starts at zero"
    await store.refund_messages("w4", 5, now=today)
    assert await store.messages_today("w4", now=today) == 0
    with pytest.raises(ValueError):
        await store.charge_messages("w4", 0)


async def test_reserve_takes_at_most_max_slots_concurrently(redis) -> None:
    numbers = NumberStore(redis)
    results = await asyncio.gather(*(NumberStore(redis).reserve("w5", f"s{i}", 3) for i in range(12)))
    assert sum(r.ok for r in results) == 3 and await numbers.count("w5") == 3
    winner = next(f"s{i}" for i, r in enumerate(results) if r.ok)
    again = await numbers.reserve("w5", winner, 3)
    assert again.ok and again.current == 3, "an id already there is idempotent, not another slot"
    assert (await redis.hgetall(keys.session("w5", winner)))["session_id"] == winner, "the record names it"


async def test_primary_is_cleared_only_by_itself(redis) -> None:
    numbers = NumberStore(redis)
    await numbers.set_primary("w6", "a")
    assert not await numbers.clear_primary("w6", "b") and await numbers.primary("w6") == "a"
    await numbers.set_primary("w6", "b")
    assert await numbers.primary("w6") == "b", "one primary per workspace"
    assert await numbers.clear_primary("w6", "b") and await numbers.primary("w6") is None


async def test_default_inputs_rank_by_headroom_from_the_send_logs(redis) -> None:
    numbers = NumberStore(redis)
    now = time.time()
    await redis.zadd(keys.pace_log("w7", "a"), {f"m{i}": now - 10 for i in range(5)})  # a sent 5 this hour
    await redis.zadd(keys.pace_log("w7", "c"), {"m": now - 10})
    await PlanLimitStore(redis).set("w7", PlanLimits(4, None))
    inputs = await numbers.default_inputs("w7", ["a", "b", "c"], PacingPolicy())
    assert inputs.ranked == ["b", "c", "a"] and inputs.primary is None and inputs.limits == PlanLimits(4, None)


def test_ranking_and_the_default_sender_rule() -> None:
    rooms = {"a": Headroom("a", 30, 900, 500), "b": Headroom("b", 30, 1000, 500), "c": Headroom("c", 30, 1000, 500),
             "p": Headroom("p", 30, 1000, 500, paused=True)}
    assert ranked(rooms) == ["b", "c", "a", "p"], "hour room first, ties by id, paused last"

    def snap(sessions: dict[str, bool], primary: str | None, order: list[str]) -> Snapshot:
        return Snapshot("w", "webjs", None, sessions, False, False, 0.0, primary, order)

    healthy = {"a": True, "b": True, "z": False}
    assert snap(healthy, "a", ["b", "a"]).default_session() == "a", "the primary while it can send"
    assert snap(healthy, "z", ["b", "a"]).default_session() == "b", "else the roomiest"
    assert snap(healthy, None, []).default_session() == "a", "no ranking yet: first healthy by id, as before"
    assert snap({"z": False, "y": False}, "z", []).default_session() == "y", "nothing can send: first by id"
    old = Snapshot("w", "webjs", None, healthy, False, False, 0.0)  # built as its other users build it
    assert old.default_session() == "a" and old.messages_per_day is None


async def test_a_number_out_of_new_contact_room_ranks_after_one_with_room(redis) -> None:
    now = time.time()
    await redis.zadd(keys.contacts("w8", "a"), {"1555000001@c.us": now - 60, "1555000002@c.us": now - 60})
    await redis.zadd(keys.contacts("w8", "b"), {"1555000003@c.us": 0})  # wrote to us first: never new
    inputs = await NumberStore(redis).default_inputs("w8", ["a", "b"], PacingPolicy(), daily_new_contacts=2)
    assert inputs.ranked == ["b", "a"], "equal hourly room: the one with new-contact room first"
