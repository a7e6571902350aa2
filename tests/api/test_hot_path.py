"""What the POST /messages hot path was made cheaper by still writes exactly what it wrote before.

Against a real Redis (the `redis` fixture's own embedded server): the batched audit writer, the one-call
nonce + rate-limit script, the event encoding without dataclasses.asdict, the opened-secret cache.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

import orjson
import pytest

from wa_ray.crypto import MasterKey
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.audit import AuditEntry, AuditLog
from wa_ray.storage.events import encode
from wa_ray.storage.ratelimit import RateLimiter
from wa_ray.events import MESSAGE_QUEUED, Event

pytestmark = pytest.mark.asyncio


def _entry(i: int) -> AuditEntry:
    return AuditEntry(ts=time.time(), who="key:k1", role="admin", method="POST", route="/v1/workspaces/{ws}/messages",
                      path="/v1/workspaces/w/messages", workspace_id="w", status=202, outcome="ok",
                      request_id=f"r{i}", client="127.0.0.1", params={"ws": "w"})


async def test_event_encoding_is_to_dict_without_id() -> None:
    event = Event(MESSAGE_QUEUED, "w", "s1", {"message_id": "m1", "nested": {"a": [1, 2]}}, ts=123.5, id="1-1")
    expected = {k: v for k, v in event.to_dict().items() if k != "id"}
    assert orjson.loads(encode(event)) == expected
    assert set(orjson.loads(encode(event))) == set(expected)  # a field added to Event must show up here too


async def test_audit_batches_concurrent_entries_and_returns_each_id(redis) -> None:
    audit = AuditLog(redis)
    entries = [_entry(i) for i in range(300)]
    ids = await asyncio.gather(*(audit.record(e) for e in entries))
    assert len(set(ids)) == 300
    stored = await redis.xrange(keys.audit())
    assert [entry_id for entry_id, _ in stored] == ids  # in order, one stream entry per call
    assert [orjson.loads(f["e"]) for _, f in stored] == [asdict(e) for e in entries]
    assert await audit.record(_entry(300))  # and a lone call still goes through


async def test_audit_reports_a_redis_failure_to_every_caller(redis) -> None:
    await redis.set(keys.audit(), "not a stream")  # every XADD now fails with WRONGTYPE
    audit = AuditLog(redis)
    results = await asyncio.gather(*(audit.record(_entry(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, Exception) and "WRONGTYPE" in str(r) for r in results), results


async def test_nonce_and_rate_in_one_call(redis) -> None:
    limiter = RateLimiter(redis)
    fresh, verdict = await limiter.nonce_and_check("k1", "n" * 16, 600, 1.0, 2)
    assert fresh and verdict.allowed
    assert 595 <= await redis.ttl(keys.nonce("k1", "n" * 16)) <= 600
    fresh, verdict = await limiter.nonce_and_check("k1", "n" * 16, 600, 1.0, 2)
    assert not fresh  # replayed: refused, and not charged to the key
    allowed = [(await limiter.nonce_and_check("k1", f"m{i:08d}", 600, 1.0, 2))[1] for i in range(3)]
    # burst 2 at 1/s: the first call used one, so one more passes and the rest wait about a second
    assert [v.allowed for v in allowed] == [True, False, False]
    assert 0 < allowed[2].retry_after_s <= 1.0 and allowed[2].retry_after_header == "1"
    assert await redis.exists(keys.key_rate_limit("k1"))  # the key's one bucket, in its slot
    assert not (await limiter.check_key("k1", 1.0, 2)).allowed  # its tokens spend the same bucket
    fresh, verdict = await limiter.nonce_and_check("k2", "x" * 16, 600, 0, 1)
    assert fresh and verdict.allowed  # rate 0: unlimited


async def test_api_key_secret_cache_follows_the_stored_blob(redis) -> None:
    store = ApiKeyStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    first = await store.create("admin", None, "k-cache")
    assert (await store.get("k-cache")).secret == first.secret
    assert (await store.get("k-cache")).secret == first.secret  # from the cache
    second = await store.create("admin", None, "k-cache")  # re-created: a new blob, so a new secret is read
    assert second.secret != first.secret and (await store.get("k-cache")).secret == second.secret
    await store.revoke("k-cache")
    assert await store.get("k-cache") is None  # revoked: gone at once, cache or not
