"""storage/webhook_endpoints.py and actors/webhook_batches.py against embedded Redis: what a subscription
matches, which headers pass, the sealed secret bound to its endpoint and URL, the bound of ten endpoints under
concurrent creates, and batches closed by count or by time."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis.asyncio as aioredis

from wa_ray.actors.webhook_batches import BatchCollector, batch_id
from wa_ray.crypto import DecryptError, MasterKey
from wa_ray.events import EVENT_TYPES
from wa_ray.storage import keys
from wa_ray.storage.stream_consumer import Entry, Outcome
from wa_ray.storage.webhook_endpoints import (
    BatchPolicy,
    EndpointLimit,
    WebhookEndpointStore,
    header_problem,
    pattern_problem,
    subscribed,
)


def test_subscriptions_match_types_prefixes_and_everything() -> None:
    assert subscribed(["*"], "session.qr")
    assert subscribed(["message.*"], "message.received") and not subscribed(["message.*"], "messages.synced")
    assert subscribed(["session.status"], "session.status") and not subscribed(["session.status"], "session.qr")
    assert not subscribed([], "session.qr")
    assert pattern_problem("message.*", EVENT_TYPES) is None and pattern_problem("*", EVENT_TYPES) is None
    for bad in ("message", "message.nope", "nothing.*", "*.received", "message.**"):
        assert pattern_problem(bad, EVENT_TYPES), bad


def test_headers_of_the_delivery_and_of_http_cannot_be_set() -> None:
    assert header_problem("Authorization", "Bearer x") is None and header_problem("X-Tenant", "") is None
    for name in ("webhook-signature", "Webhook-Id", "X-Event-Id", "x-signature", "Host", "content-length",
                 "Proxy-Foo", "a b", "", "x" * 65, "X-Ok\n"):
        assert header_problem(name, "v"), name
    for value in ("a\r\nX-Injected: 1", "a\n", "\x00", "é", "v" * 1025):
        assert header_problem("X-Ok", value), repr(value)


async def test_the_seal_is_bound_to_its_endpoint_and_url_and_never_read_back(redis: aioredis.Redis) -> None:
    store = WebhookEndpointStore(redis, MasterKey(os.urandom(32)))
    made = await store.create("wa", "http://127.0.0.1:9/a", "first-secret-0123", ["*"], {"Authorization": "t0k"},
                              None, "")
    target = await store.target("wa", made.id)
    assert target and (target.secret, target.headers) == ("first-secret-0123", {"Authorization": "t0k"})
    raw = await redis.hget(keys.webhook_endpoints("wa"), made.id)
    assert "first-secret" not in raw and "t0k" not in raw and made.public()["header_names"] == ["Authorization"]
    await redis.hset(keys.webhook_endpoints("wa"), made.id, raw.replace("127.0.0.1:9/a", "127.0.0.1:9/b"))
    with pytest.raises(DecryptError):  # a URL edited in Redis: the secret does not follow it
        await store.target("wa", made.id)
    await redis.hset(keys.webhook_endpoints("other"), made.id, raw)
    with pytest.raises(DecryptError):  # nor does a record copied to another workspace
        await store.target("other", made.id)
    assert await store.delete("wa", made.id) and not await store.delete("wa", made.id)
    assert await store.update("wa", made.id, {"description": "back?"}) is None, "a deleted one is not revived"
    assert await redis.hget(keys.webhook_endpoints("wa"), made.id) is None


async def test_ten_endpoints_at_most_even_when_created_at_once(redis: aioredis.Redis) -> None:
    store = WebhookEndpointStore(redis, MasterKey(os.urandom(32)))
    made = await asyncio.gather(*(store.create("wa", "http://127.0.0.1:9/", "s" * 16, ["*"], {}, None, "")
                                  for _ in range(13)), return_exceptions=True)
    assert sum(isinstance(m, EndpointLimit) for m in made) == 3
    assert len(await store.endpoints("wa")) == 10 and len(await redis.smembers(keys.webhook_endpoint_lanes())) == 10


async def test_a_batch_closes_when_full_or_when_its_time_is_up() -> None:
    sent: list[tuple[str, list[str], float]] = []
    start = time.monotonic()

    async def send(lane: str, entries: list[Entry], events: list[dict]) -> Outcome:
        sent.append((lane, [e["id"] for e in events], time.monotonic() - start))
        return Outcome.DONE

    batches = BatchCollector(send)
    policy = BatchPolicy(max_events=3, max_wait_ms=300)

    def add(i: int):
        return batches.add("wa/we_1", policy, Entry("q", f"{i}-0", {}), {"id": f"{i}-0"})

    outcomes = await asyncio.gather(*(add(i) for i in range(4)))
    assert outcomes == [Outcome.DONE] * 4
    assert [ids for _, ids, _ in sent] == [["0-0", "1-0", "2-0"], ["3-0"]]
    assert sent[0][2] < 0.2 and sent[1][2] >= 0.25, sent  # full at once; the last one waited for its time
    assert batch_id([{"id": "1-0"}, {"id": "2-0"}]) == batch_id([{"id": "1-0"}, {"id": "2-0"}]) != batch_id(
        [{"id": "1-0"}])
