"""Chaos suite options. It runs in the default suite at a reduced scale (DEFAULT_SCALE: about a minute here,
every kind of fault at least once); `--chaos-scale N` or WA_CHAOS_SCALE=N runs it bigger (scale 1 is 36 s of
sustained send, 2+ adds a session and raises the rate), and `python -m wa_ray.bench chaos --runs N` repeats it and
tallies the runs.

The option is honoured when pytest starts from this directory (`pytest tests/chaos --chaos-scale 3`);
the environment variable works from anywhere."""

from __future__ import annotations

import os

import pytest

DEFAULT_SCALE = 0.5


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-scale", type=float, default=None,
                     help=f"scale of the chaos scenario (default {DEFAULT_SCALE}, or WA_CHAOS_SCALE)")


@pytest.fixture(scope="session")
def chaos_scale(request: pytest.FixtureRequest) -> float:
    try:
        option = request.config.getoption("--chaos-scale")
    except ValueError:  # the option was not registered (pytest started above this directory)
        option = None
    return float(option if option is not None else os.environ.get("WA_CHAOS_SCALE", DEFAULT_SCALE))
