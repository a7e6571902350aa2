"""Fixtures of the API tests: keys of each role on the live service, signed clients, raw access.

Everything runs against the shared session-scoped `service` (real Serve proxy,
real Redis, real Ray); keys are created straight in its Redis through the
same ApiKeyStore the service reads.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from wa_ray.master_keys import load_master_keys
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.redis_client import connect
from wa_ray.signing import HmacAuth


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: str
    workspace_id: str | None


@pytest.fixture
async def live_redis(service) -> AsyncIterator[aioredis.Redis]:
    client = connect(service.config.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def key_store(service, live_redis: aioredis.Redis) -> ApiKeyStore:
    master, *previous = load_master_keys(service.config)
    return ApiKeyStore(live_redis, master, previous)


@pytest.fixture
def make_key(key_store: ApiKeyStore) -> Callable[..., Awaitable[Key]]:
    async def make(role: str, ws: str | None = None, **kw: object) -> Key:
        key = await key_store.create(role, ws, f"t-{role[:2]}-{secrets.token_hex(4)}", **kw)  # type: ignore[arg-type]
        return Key(key.key_id, key.secret, ws)

    return make


@pytest.fixture
def unique_ws() -> str:
    return f"ws-{secrets.token_hex(4)}"


@pytest.fixture
async def client_for(service) -> AsyncIterator[Callable[[Key], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def open_client(key: Key) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key.key_id, key.secret), timeout=30)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.aclose()


@pytest.fixture
async def raw(service) -> AsyncIterator[httpx.AsyncClient]:
    """Unsigned: for attacks that build their own headers."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
        yield client
