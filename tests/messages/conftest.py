"""Fixtures of the message-pipeline tests: a bare Redis for the store-level tests, and one Cloud API
simulator per run (the only fake besides the WhatsApp Web simulator). Service-level tests use the
session-wide `service` fixture from tests/conftest.py; each test picks its own workspace ids,
phone numbers and phone_number_ids so they never see each other's traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from storage.embedded import EmbeddedRedis
from storage.redis_client import connect


@pytest.fixture(scope="session")
def bare_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedRedis(tmp_path_factory.mktemp("msg-redis")) as server:
        yield server.url


@pytest.fixture
async def redis(bare_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(bare_redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def cloud_sim() -> Iterator[object]:
    """Meta's realistic defaults stay on (24 h window, pair burst 45, 80/s); tests that need them off say so."""
    from simulator.cloud_api.testing import running_cloud_simulator

    with running_cloud_simulator() as sim:
        yield sim
