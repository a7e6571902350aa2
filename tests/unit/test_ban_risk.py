"""The ban-risk score and policy (pure), the store's evaluation and resume, and the inbound hook's counts
(embedded Redis)."""

from __future__ import annotations

import time

import orjson
import pytest
import redis.asyncio as aioredis

from wa_ray.actors import inbound_tallies
from wa_ray.actors.ban_risk_gate import contact_of
from wa_ray.storage import keys, tallies
from wa_ray.storage.ban_risk import (WEIGHTS, BanRiskPolicy, BanRiskStore, RiskInputs, level_of, policy_from,
                                    risk_of, score, threshold_level)
from wa_ray.storage.campaign_replies import CampaignReplies
from wa_ray.storage.contact_log import DAY_S, ContactLog
from wa_ray.storage.pacing import PacingPolicy, PacingStore

POLICY = BanRiskPolicy()


def test_weights_sum_to_100_and_a_quiet_number_scores_0() -> None:
    assert sum(WEIGHTS.values()) == 100
    quiet = score(RiskInputs(), POLICY)
    assert quiet.score == 0 and quiet.level == "ok" and set(quiet.factors) == set(WEIGHTS)


def test_every_factor_at_its_worst_is_100_and_never_more() -> None:
    worst = RiskInputs(sent_hour=5000, per_hour=1000, new_contacts=900, daily_new_contacts=500, sent_day=10,
                       failed_day=90, refused_day=50, replies_day=0)
    risk = score(worst, POLICY)
    assert risk.score == 100 and risk.factors == WEIGHTS and risk.level == "critical"


def test_each_factor_scales_with_what_it_measures() -> None:
    half_rate = score(RiskInputs(sent_hour=500, per_hour=1000), POLICY)
    assert half_rate.factors["send_rate"] == 12.5 and half_rate.score == 12.5
    contacts = score(RiskInputs(new_contacts=250, daily_new_contacts=500, replies_day=250), POLICY)
    assert contacts.factors["new_contacts"] == 15 and contacts.factors["few_replies"] == 0  # replies plenty
    failed = score(RiskInputs(sent_day=90, failed_day=10), POLICY)  # 10 % of 25 % -> 0.4 of 15
    assert failed.factors["failed"] == 6.0
    refused = score(RiskInputs(sent_day=95, failed_day=5, refused_day=5), POLICY)  # 5 % of 10 % -> half
    assert refused.factors["refused"] == 7.5


def test_few_replies_weigh_only_from_a_sample_and_less_with_each_reply() -> None:
    assert score(RiskInputs(new_contacts=2, daily_new_contacts=500), POLICY).factors["few_replies"] == 0
    none = score(RiskInputs(new_contacts=10, daily_new_contacts=500), POLICY).factors["few_replies"]
    some = score(RiskInputs(new_contacts=10, daily_new_contacts=500, replies_day=1), POLICY).factors["few_replies"]
    enough = score(RiskInputs(new_contacts=10, daily_new_contacts=500, replies_day=3), POLICY).factors["few_replies"]
    assert none == 15 and 0 < some < none and enough == 0


def test_levels_and_threshold_levels() -> None:
    assert [level_of(s, POLICY) for s in (0, 69.9, 70, 89.9, 90, 100)] == \
        ["ok", "ok", "warning", "warning", "critical", "critical"]
    no_pause = BanRiskPolicy(warn_at=(50,), pause_at=None)
    assert level_of(99, no_pause) == "warning" and threshold_level(50, no_pause) == "warning"
    assert threshold_level(70, POLICY) == "warning" and threshold_level(90, POLICY) == "critical"


@pytest.mark.parametrize("raw", [None, [], "x", {"daily_new_contacts": 0}, {"daily_new_contacts": True},
                                 {"warn_at": [0]}, {"warn_at": [101]}, {"warn_at": "70"}, {"warn_at": [1] * 6},
                                 {"pause_at": 0}, {"pause_at": 1.5}, {"resume_cooldown_s": -1},
                                 {"enabled": "yes"}, {"daily_new_contacts": 10**9}])
def test_a_stored_value_outside_the_bounds_is_the_default(raw: object) -> None:
    assert policy_from(raw) == BanRiskPolicy()


def test_a_valid_stored_policy_is_read_back_sorted_and_unique() -> None:
    raw = {"enabled": False, "daily_new_contacts": 3, "warn_at": [90, 20, 20], "pause_at": None,
           "resume_cooldown_s": 0}
    assert policy_from(raw) == BanRiskPolicy(False, 3, (20, 90), None, 0)


async def test_evaluate_reports_each_upward_crossing_once_and_pauses_once(redis: aioredis.Redis) -> None:
    store = BanRiskStore(redis, cache_ttl_s=0)
    policy = BanRiskPolicy(daily_new_contacts=4, warn_at=(20, 40), pause_at=60)
    low = RiskInputs(new_contacts=1, daily_new_contacts=4)  # 7.5
    mid = RiskInputs(new_contacts=3, daily_new_contacts=4, sent_hour=1, per_hour=4)  # 22.5 + 6.25 + 15
    high = RiskInputs(new_contacts=4, daily_new_contacts=4, sent_hour=4, per_hour=4)  # 30 + 25 + 15
    assert (await store.evaluate("ws", "s1", policy, low)).crossed == []
    first = await store.evaluate("ws", "s1", policy, mid)
    assert first.crossed == [20, 40] and not first.paused and first.risk.score == 43.75
    assert (await store.evaluate("ws", "s1", policy, mid)).crossed == []  # still above: no new crossing
    top = await store.evaluate("ws", "s1", policy, high)
    assert top.crossed == [] and top.paused and await store.is_paused("ws", "s1")
    assert not (await store.evaluate("ws", "s1", policy, high)).paused  # paused already
    assert (await store.evaluate("ws", "s1", policy, low)).crossed == []  # fell below both
    assert (await store.evaluate("ws", "s1", policy, mid)).crossed == [20, 40]  # crossed again
    stored = await risk_of(redis, "ws", "s1")
    assert stored is not None and stored["score"] == 43.75 and stored["level"] == "critical"  # the top of two
    assert await risk_of(redis, "ws", "never") is None


async def test_resume_ends_our_pause_not_the_hourly_cap_and_suppresses_the_next(redis: aioredis.Redis) -> None:
    store = BanRiskStore(redis, cache_ttl_s=0)
    policy = BanRiskPolicy(warn_at=(10,), pause_at=10)
    hot = RiskInputs(new_contacts=500, daily_new_contacts=500)
    assert (await store.evaluate("ws", "s1", policy, hot)).paused
    await redis.set(keys.session_paused("ws", "s1"), "ban_risk|")
    assert await store.resume("ws", "s1", cooldown_s=60) == "ban_risk"
    assert not await redis.exists(keys.session_paused("ws", "s1"), keys.risk_paused("ws", "s1"))
    assert not (await store.evaluate("ws", "s1", policy, hot)).paused  # the cool-down holds it off
    assert await store.in_cooldown("ws", "s1")

    await redis.set(keys.session_paused("ws", "s2"), f"hourly_cap|{time.time() + 100!r}")
    assert await store.resume("ws", "s2", cooldown_s=0) is None
    assert await redis.exists(keys.session_paused("ws", "s2"))  # the pacing's own pause stays
    assert not await store.in_cooldown("ws", "s2")
    await redis.set(keys.session_paused("ws", "s3"), f"daily_contacts_cap|{time.time() + 100!r}")
    assert await store.resume("ws", "s3", cooldown_s=5) == "daily_contacts_cap"


async def test_inputs_read_the_send_log_contacts_and_the_day(redis: aioredis.Redis) -> None:
    pacing, log = PacingStore(redis, PacingPolicy()), ContactLog(redis)
    now = time.time()
    for i in range(3):
        await pacing.record("ws", "s1", f"m{i}", at=now - 10 * i)
        await log.sent_to("ws", "s1", f"{i}@c.us", at=now - 10 * i)
    await log.sent_to("ws", "s1", "old@c.us", at=now - DAY_S - 10)
    for metric, n in (("sent", 7), ("failed", 2), ("refused", 1), ("replies", 1)):
        await tallies.bump(redis, "ws", "s1", metric, n)
    inputs = await BanRiskStore(redis).inputs("ws", "s1", per_hour=30, daily_new_contacts=10)
    assert inputs == RiskInputs(3, 30, 3, 10, 7, 2, 1, 1)


async def test_store_policy_round_trip(redis: aioredis.Redis) -> None:
    store = BanRiskStore(redis, cache_ttl_s=0)
    assert await store.policy("ws") == BanRiskPolicy()
    saved = await store.set_policy("ws", BanRiskPolicy(daily_new_contacts=3, warn_at=(20,), pause_at=None))
    assert await store.policy("ws") == saved and saved.pause_at is None
    await redis.set(keys.ban_risk_policy("ws"), b"{not json")
    assert await store.policy("ws") == BanRiskPolicy()
    assert orjson.loads(orjson.dumps(saved.to_dict()))["warn_at"] == [20]


def test_contact_of_a_send() -> None:
    assert contact_of("15550001111") == "15550001111@c.us"
    assert contact_of("123-456@g.us") is None and contact_of(None) is None


async def test_inbound_counts_received_replies_once_a_day_and_a_campaign_reply(redis: aioredis.Redis) -> None:
    now = time.time()
    log = ContactLog(redis)
    await log.sent_to("ws", "s1", "111@c.us", at=now - 60)  # we wrote to it a minute ago
    await log.sent_to("ws", "s1", "222@c.us", at=now - DAY_S - 60)  # longer ago than a day
    await CampaignReplies(redis).remember_recipient("ws", "s1", "111@c.us", "cmp1")
    for contact in ("111@c.us", "111@c.us", "222@c.us", "333@c.us", None):
        await inbound_tallies.on_inbound(redis, "ws", "s1", contact, now=now)
    day = (await tallies.session_days(redis, "ws", "s1", [tallies.day_of(now)]))[tallies.day_of(now)]
    assert day == {"received": 5, "replies": 1}
    assert await redis.zscore(keys.contacts("ws", "s1"), "333@c.us") == 0  # wrote first: never new
    assert (await tallies.campaign_counts(redis, "ws", "cmp1")) == {"s1": {"replied": 1}}


def test_what_counts_as_inbound_and_whose() -> None:
    one = {"chat_id": "15550001111@c.us", "from": "15550001111", "is_group": False}
    assert inbound_tallies.counts_as_inbound(one, False) and not inbound_tallies.counts_as_inbound(one, True)
    assert not inbound_tallies.counts_as_inbound({"chat_id": "status@broadcast"}, False)
    assert inbound_tallies.contact_of(one) == "15550001111@c.us"
    assert inbound_tallies.contact_of({**one, "is_group": True}) is None
    assert inbound_tallies.contact_of({**one, "from": None}) is None


class _Pauses:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


async def test_the_gate_holds_a_new_contact_at_the_cap_only(redis: aioredis.Redis) -> None:
    from wa_ray.actors.ban_risk_gate import BanRiskGate
    from wa_ray.storage.events import EventLog

    await BanRiskStore(redis).set_policy("ws", BanRiskPolicy(daily_new_contacts=2, warn_at=(), pause_at=None))
    gate = BanRiskGate(redis, "ws", "s1", EventLog(redis), _Pauses())
    log = ContactLog(redis)
    await log.sent_to("ws", "s1", "1@c.us", at=time.time() - 100)
    assert await gate.hold("3", per_hour=30) is None  # one slot left
    await log.sent_to("ws", "s1", "2@c.us")
    held = await gate.hold("3", per_hour=30)
    assert held is not None and held.reason == "daily_contacts_cap"
    assert abs(held.resume_at - (time.time() - 100 + DAY_S)) < 5  # when the oldest first contact ages out
    assert await gate.hold("1", per_hour=30) is None  # known
    assert await gate.hold("120363000000000001@g.us", per_hour=30) is None  # a group is no contact
    await redis.set(keys.risk_cooldown("ws", "s1"), "1")
    assert await gate.hold("3", per_hour=30) is None  # an operator let it through
    await redis.delete(keys.risk_cooldown("ws", "s1"))
    await redis.set(keys.risk_paused("ws", "s1"), "1")
    assert (await gate.hold("1", per_hour=30)).reason == "ban_risk"  # paused: even a known contact waits
    await BanRiskStore(redis).set_policy("ws", BanRiskPolicy(enabled=False))
    gate = BanRiskGate(redis, "ws", "s1", EventLog(redis), _Pauses())
    assert await gate.hold("3", per_hour=30) is None


async def test_refusals_alone_pause_the_number_before_its_next_send(redis: aioredis.Redis) -> None:
    from wa_ray.actors.ban_risk_gate import BanRiskGate
    from wa_ray.storage.events import EventLog

    await BanRiskStore(redis).set_policy("ws", BanRiskPolicy(warn_at=(10,), pause_at=25))
    for metric, n in (("failed", 10), ("refused", 10)):  # every send failed, every one refused: 15 + 15
        await tallies.bump(redis, "ws", "s1", metric, n)
    pauses = _Pauses()
    gate = BanRiskGate(redis, "ws", "s1", EventLog(redis), pauses)
    held = await gate.hold("5", per_hour=30)
    assert held is not None and held.reason == "ban_risk" and pauses.count == 1
    stored = await risk_of(redis, "ws", "s1")
    assert stored is not None and stored["factors"]["refused"] == 15 and stored["score"] == 30
    events = await redis.xrange(keys.events("ws"))
    published = [orjson.loads(fields["e"]) for _, fields in events]
    assert [(e["type"], e["data"]["threshold"], e["data"]["level"]) for e in published] == \
        [("session.ban_risk", 10, "warning")]
