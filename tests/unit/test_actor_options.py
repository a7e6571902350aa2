"""Our actors are created without Ray task events unless WA_RAY_TASK_EVENTS asks for them.

Why it matters: with task events on, the GCS keeps every actor call (up to 100,000, ~3.4 KB each) and grew
~8 MB a minute at 1,000 msg/min in the soak (bench/results/experiments/task-events-20261207)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wa_ray.config import Settings


def _options(tmp_path: Path) -> dict[str, bool]:
    return Settings(data_dir=tmp_path).runtime("redis://127.0.0.1:1", "k1").actor_options()


def test_task_events_are_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WA_RAY_TASK_EVENTS", raising=False)
    assert _options(tmp_path) == {"enable_task_events": False}


def test_an_operator_can_turn_them_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_RAY_TASK_EVENTS", "1")
    assert _options(tmp_path) == {"enable_task_events": True}
