"""One real Chromium for the simulator tests (a fresh context per test), and a WhatsApp Web simulator per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from wa_ray.simulator.wa_web.testing import CHROMIUM, CHROMIUM_ARGS, RunningSimulator, running_web_simulator


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    """A fresh simulator for each test module (a module may define its own `sim` instead)."""
    with running_web_simulator() as running:
        yield running
