"""The media policy store on a Redis of its own: defaults, bounds on write, invalid stored fields fall back
field by field, and the read cache serves a PUT's value within its TTL, at once in the writing process."""

from __future__ import annotations

import asyncio

import pytest

from wa_ray.message_kinds import UPLOAD_MAX_BYTES
from wa_ray.storage import keys
from wa_ray.storage.media_policy import DEFAULT_MAX_BYTES, MediaPolicy, MediaPolicyStore

pytestmark = pytest.mark.asyncio


async def test_default_set_and_bounds(redis) -> None:
    store = MediaPolicyStore(redis)
    assert await store.get("ws-a") == MediaPolicy("eager", DEFAULT_MAX_BYTES)
    assert (await store.get("ws-a")).eager
    await store.set("ws-a", MediaPolicy("off", 10))
    assert await store.get("ws-a") == MediaPolicy("off", 10)  # the writer's own cache is dropped
    assert await store.get("ws-b") == MediaPolicy()
    for bad in (MediaPolicy("later", 10), MediaPolicy("off", 0), MediaPolicy("off", UPLOAD_MAX_BYTES + 1),  # type: ignore[arg-type]
                MediaPolicy("off", True)):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await store.set("ws-a", bad)
    assert await store.get("ws-a") == MediaPolicy("off", 10)


async def test_other_process_sees_a_change_after_the_ttl(redis) -> None:
    reader, writer = MediaPolicyStore(redis, cache_ttl_s=0.2), MediaPolicyStore(redis)
    assert (await reader.get("ws-c")).eager
    await writer.set("ws-c", MediaPolicy("off", 100))
    assert (await reader.get("ws-c")).eager  # cached
    await asyncio.sleep(0.25)
    assert await reader.get("ws-c") == MediaPolicy("off", 100)


async def test_stored_garbage_falls_back_field_by_field(redis) -> None:
    store = MediaPolicyStore(redis, cache_ttl_s=0)
    cases = {b'{"download": "off", "max_bytes": 1.5}': MediaPolicy("off"),
             b'{"download": "off", "max_bytes": 1e999}': MediaPolicy(),  # not JSON orjson reads: all default
             b'{"download": "x", "max_bytes": 77}': MediaPolicy("eager", 77),
             b'{"max_bytes": 104857601}': MediaPolicy(), b"[]": MediaPolicy(), b"{": MediaPolicy(), b"": MediaPolicy()}
    for raw, expected in cases.items():
        await redis.set(keys.media_policy("ws-d"), raw)
        assert await store.get("ws-d") == expected, raw
