"""The retry schedule of WhatsApp-side disconnects (actors/disconnect_retry.py) on its own."""

from __future__ import annotations

import pytest

from wa_ray.actors.disconnect_retry import (
    SOCKET_CAUSES,
    DisconnectCause,
    attempt_offsets,
    gave_up_reason,
)


def test_conflict_schedule_backs_off_to_the_cap_within_two_minutes() -> None:
    assert attempt_offsets(120) == [2, 6, 14, 30, 60, 90]


def test_timeout_schedule_starts_after_the_grace() -> None:
    assert attempt_offsets(120, start_s=10) == [12, 16, 24, 40, 70, 100]


def test_schedule_invariants_hold_for_any_budget() -> None:
    for budget in (0, 1, 2, 2.5, 6, 7, 31, 119.9, 120, 600):
        for start in (0, 3, 10):
            offsets = attempt_offsets(budget, start_s=start)
            assert offsets == sorted(set(offsets))
            assert all(start < o < budget for o in offsets)
            gaps = [b - a for a, b in zip([start, *offsets], offsets)]
            assert all(0 < g <= 30 for g in gaps)
            assert gaps == sorted(gaps), "delays never shrink"


def test_a_budget_shorter_than_the_first_delay_means_no_attempt() -> None:
    assert attempt_offsets(2) == []
    assert attempt_offsets(6, start_s=5) == []
    assert attempt_offsets(6) == [2]


def test_bad_delays_are_refused() -> None:
    with pytest.raises(ValueError):
        attempt_offsets(10, first_s=0)
    with pytest.raises(ValueError):
        attempt_offsets(10, first_s=5, max_s=2)


def test_each_cause_names_itself_and_the_bound() -> None:
    assert SOCKET_CAUSES == {"CONFLICT": DisconnectCause.CONFLICT, "UNLAUNCHED": DisconnectCause.UNLAUNCHED,
                             "TIMEOUT": DisconnectCause.TIMEOUT}
    for cause in DisconnectCause:
        reason = gave_up_reason(cause, 120)
        assert reason.startswith(f"{cause.value}: ") and reason.endswith("within 120 s")
    assert gave_up_reason(DisconnectCause.CONFLICT, 6.5).endswith("within 6.5 s")
    assert DisconnectCause.CONFLICT.takes_over and DisconnectCause.UNLAUNCHED.takes_over
    assert not DisconnectCause.TIMEOUT.takes_over
