"""The pacing policy (pure) and its Redis windows; the Cloud API rate helpers."""

from __future__ import annotations

import random

from wa_ray.storage.pacing import HOUR, PacingPolicy, PacingStore, SlidingWindow, TokenBucket, Window, decide

NOW = 1_000_000.0


def test_seed_rule_gaps() -> None:
    p = PacingPolicy()
    # the n-th message of the minute (n = sent so far + 1): <=5 none, >5 1 s, >10 2 s, >15 3 s, >20 5 s
    assert [p.gap_s(n - 1) for n in (1, 5, 6, 10, 11, 15, 16, 20, 21, 30)] == [0, 0, 1, 1, 2, 2, 3, 3, 5, 5]


def test_decide_spaces_sends_after_the_last_one() -> None:
    p = PacingPolicy()
    last_just_now = Window(NOW, [NOW - 30 + i for i in range(11)] + [NOW], 12, NOW - 30)
    assert decide(p, last_just_now).wait_s == 2.0  # 13th in the minute: 2 s after the last
    quiet = Window(NOW, [NOW - 50, NOW - 40], 2, NOW - 50)
    assert decide(p, quiet).wait_s == 0


def test_minute_cap_waits_for_the_window() -> None:
    p = PacingPolicy()
    times = [NOW - 59.5 + i for i in range(30)]  # 30 in the last minute, the oldest 59.5 s ago
    d = decide(p, Window(NOW, times, 30, times[0]))
    assert d.reason == "minute_cap" and abs(d.wait_s - 0.5) < 1e-9  # the 31st waits for the oldest to age out


def test_hourly_cap_pauses_until_the_oldest_ages_out() -> None:
    p = PacingPolicy(per_hour=3)
    d = decide(p, Window(NOW, [NOW - 10], 3, NOW - 1000))
    assert d.paused_until == NOW - 1000 + HOUR and d.reason == "hourly_cap"


def test_disabled_policy_never_waits() -> None:
    p = PacingPolicy(enabled=False)
    assert decide(p, Window(NOW, [NOW] * 50, 5000, NOW - 10)).wait_s == 0
    assert decide(p, Window(NOW, [NOW] * 50, 5000, NOW - 10)).paused_until is None


def test_typing_delay_grows_with_length_within_jitter() -> None:
    p = PacingPolicy(typing_per_char_s=0.05, typing_min_s=0.2, typing_max_s=3.0, typing_jitter=0.2)
    rng = random.Random(7)
    short = [p.typing_s(10, rng) for _ in range(200)]
    long = [p.typing_s(40, rng) for _ in range(200)]
    assert all(0.7 * 0.8 - 1e-9 <= s <= 0.7 * 1.2 + 1e-9 for s in short)
    assert all(2.2 * 0.8 - 1e-9 <= s <= 2.2 * 1.2 + 1e-9 for s in long)
    assert max(p.typing_s(10_000, rng) for _ in range(50)) <= 3.0 * 1.2
    assert len(set(short)) > 100  # jittered, not constant
    assert PacingPolicy(typing=False).typing_s(100) == 0


def test_overrides_are_field_by_field() -> None:
    p = PacingPolicy().with_overrides({"per_hour": 5, "steps": [[2, 0.5]], "unknown": 1, "above_s": None})
    assert (p.per_hour, p.steps, p.above_s, p.per_minute) == (5, ((2, 0.5),), 5.0, 30)
    assert p.gap_s(0) == 0.5 and p.gap_s(2) == 5.0


async def test_store_windows_and_overrides(redis) -> None:
    store = PacingStore(redis, PacingPolicy(), cache_ttl_s=0)
    for i, ago in enumerate((4000, 3000, 100, 30, 10)):
        await store.record("ws", "s1", f"m{i}", at=__import__("time").time() - ago)
    w = await store.window("ws", "s1")
    assert len(w.last_minute) == 2 and w.hour_count == 4  # the 4000 s old one is trimmed
    assert (await store.policy("ws")).per_hour == 1000
    await store.set_overrides("ws", {"per_hour": 4, "enabled": True})
    policy = await store.policy("ws")
    assert policy.per_hour == 4 and decide(policy, w).reason == "hourly_cap"


def test_token_bucket_bursts_then_refills() -> None:
    b = TokenBucket(burst=3, refill_s=6.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == 6.0  # the 4th waits a refill
    assert b.take(6.0) == 6.0  # that token went to the reserved one
    b.drain(20.0)
    assert b.take(20.0) == 6.0


def test_sliding_window_holds_the_per_second_limit() -> None:
    w = SlidingWindow(limit=3, span_s=1.0)
    waits = [w.take(0.0) for _ in range(7)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
