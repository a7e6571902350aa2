"""Chaos suite options: `--chaos-scale N` (or WA_CHAOS_SCALE=N) runs the scenario N times bigger.

The option is honoured when pytest starts from this directory (`pytest tests/chaos --chaos-scale 3`);
the environment variable works from anywhere."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-scale", type=float, default=None,
                     help="scale of the chaos scenario (default 1, or WA_CHAOS_SCALE)")


@pytest.fixture(scope="session")
def chaos_scale(request: pytest.FixtureRequest) -> float:
    try:
        option = request.config.getoption("--chaos-scale")
    except ValueError:  # the option was not registered (pytest started above this directory)
        option = None
    return float(option if option is not None else os.environ.get("WA_CHAOS_SCALE", "1"))
