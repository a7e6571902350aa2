"""Overload over real loopback HTTP against the real service (Serve proxy, Ingress replica, Redis).

Whatever the load, POST /messages answers 202 (durable in Redis) or sheds with 503 in the error shape
with Retry-After; never a 500 or any other 5xx, and nothing that was answered 202 is missing from
Redis. The first test forces shedding at a tiny in-flight cap (set at run time through
`wa:cfg:admission`), so it shows the 503s whatever the machine's speed; the second drives a real
burst at the default limits.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest

from wa_ray.serve_app.admission import Admission, Limits
from wa_ray.storage import keys
from tests.conftest import OPERATOR
from wa_ray.signing import signed_headers

pytestmark = pytest.mark.asyncio

TO = "15552990001"


@dataclass
class Shot:
    k: int
    idem: str
    status: int
    retry_after: str | None
    body: dict


async def _blast(base_url: str, key, ws: str, sid: str, n: int, concurrency: int, tag: str) -> list[Shot]:
    """n signed POSTs, all issued at once, at most `concurrency` connections: a burst past what the replica turns."""
    path = f"/v1/workspaces/{ws}/messages"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=180)) as session:
        async def one(k: int) -> Shot:
            body = orjson.dumps({"session_id": sid, "to": TO, "text": f"overload {tag} #{k}"})
            idem = f"ovl-{tag}-{k}"
            headers = {**signed_headers(key.key_id, key.secret, "POST", path, body),
                       "Content-Type": "application/json", "Idempotency-Key": idem}
            async with session.post(base_url + path, data=body, headers=headers) as r:
                raw = await r.read()
                try:
                    parsed = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    parsed = {"raw": raw[:300].decode(errors="replace")}
                return Shot(k, idem, r.status, r.headers.get("Retry-After"), parsed)

        return list(await asyncio.gather(*(one(k) for k in range(n))))


async def _check(shots: list[Shot], live_redis, ws: str, sid: str) -> Counter[int]:
    codes = Counter(s.status for s in shots)
    assert set(codes) <= {202, 503}, (codes, [s.body for s in shots if s.status not in (202, 503)][:3])
    for s in shots:
        if s.status == 503:  # the design's shape, a code that says why, and when to come back
            assert set(s.body) == {"error"} and set(s.body["error"]) == {"code", "message", "details"}, s.body
            assert s.body["error"]["code"] in ("overloaded", "store_unavailable"), s.body
            assert s.retry_after is not None and s.retry_after.isdigit() and int(s.retry_after) >= 1, s
    accepted = [s for s in shots if s.status == 202]
    # every 202 is in Redis: its record, its Idempotency-Key, its queue entry
    async with live_redis.pipeline(transaction=False) as pipe:
        for s in accepted:
            pipe.get(keys.idempotency(ws, s.idem))
            pipe.hget(keys.message(ws, s.body["message_id"]), "status")
        replies = await pipe.execute()
    for s, idem, status in zip(accepted, replies[::2], replies[1::2], strict=True):
        assert idem and idem.split("|")[0] == s.body["message_id"], (s, idem)
        assert status == "queued", (s, status)
    queued = await live_redis.xrange(keys.queue(ws, sid, "normal"))
    assert sorted(f["m"] for _, f in queued) == sorted(s.body["message_id"] for s in accepted)
    # and a request shed at the door wrote nothing
    shed = [s for s in shots if s.status == 503 and s.body["error"]["code"] == "overloaded"]
    if shed:
        async with live_redis.pipeline(transaction=False) as pipe:
            for s in shed:
                pipe.exists(keys.idempotency(ws, s.idem))
            assert not any(await pipe.execute())
    return codes


@pytest.fixture
async def unlinked_session(api, unique_ws) -> AsyncIterator[tuple[str, str]]:
    """A real session that never links: what is accepted for it waits in its queue, where the test counts it."""
    created = await api.post(f"/v1/workspaces/{unique_ws}/sessions", json={"session_id": "ovl"})
    assert created.status_code == 201, created.text
    try:
        yield unique_ws, "ovl"
    finally:
        await api.delete(f"/v1/workspaces/{unique_ws}/sessions/ovl")


@pytest.fixture
async def admission_override(live_redis) -> AsyncIterator[object]:
    async def apply(**fields: object) -> None:
        await live_redis.hset(keys.admission(), mapping={k: str(v) for k, v in fields.items()})
        await asyncio.sleep(2.5)  # each replica re-reads the hash once a second

    yield apply
    await live_redis.delete(keys.admission())
    await asyncio.sleep(2.5)


async def test_forced_shedding_is_503_in_shape_and_loses_nothing(service, make_key, live_redis, raw,
                                                                 unlinked_session, admission_override) -> None:
    ws, sid = unlinked_session
    key = await make_key("workspace", ws, rate_per_s=0)  # unlimited: what refuses here is admission, not 429
    await admission_override(max_inflight=3)
    shots = await _blast(service.base_url, key, ws, sid, n=400, concurrency=100, tag=secrets.token_hex(3))
    codes = await _check(shots, live_redis, ws, sid)
    assert codes[503] > 0 and codes[202] > 0, codes
    assert {s.body["error"]["code"] for s in shots if s.status == 503} == {"overloaded"}
    # the ops routes are never shed, and /metrics counts what was
    metrics = await raw.get("/metrics", headers=OPERATOR)
    assert metrics.status_code == 200
    shed = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.text.splitlines()
               if line.startswith("wa_ingress_shed_total{"))
    assert shed >= codes[503]
    # and the audit stream says that calls were refused (one summary entry a second)
    await asyncio.sleep(1.5)
    entries = await live_redis.xrevrange(keys.audit(), count=2000)
    summaries = [orjson.loads(f["e"]) for _, f in entries if orjson.loads(f["e"])["route"] == "(shed)"]
    assert summaries and all(e["status"] == 503 and int(e["params"]["count"]) >= 1 for e in summaries)


async def test_burst_at_default_limits_never_500(service, make_key, live_redis, unlinked_session) -> None:
    ws, sid = unlinked_session
    key = await make_key("workspace", ws, rate_per_s=0)
    started = time.monotonic()
    shots = await _blast(service.base_url, key, ws, sid, n=2000, concurrency=1000, tag=secrets.token_hex(3))
    codes = await _check(shots, live_redis, ws, sid)
    assert codes[202] > 0, codes
    print(f"burst of 2000 at concurrency 1000: {dict(codes)} in {time.monotonic() - started:.1f} s")


async def test_gate_policy() -> None:
    """The rules alone: the hard cap always; the standing-queue rules only above min_inflight."""
    gate = Admission(limits=Limits(max_inflight=10, max_sojourn_s=0.5, max_lag_s=0.2, window_s=0.5, min_inflight=3))
    now = 100.0
    gate.inflight = 10
    assert gate.overloaded(now)
    gate.inflight = 5
    assert not gate.overloaded(now)

    # loop lag: every tick of the last window late -> shed; one punctual tick -> a burst being cleared
    gate._lag_window_min, gate._lag_last_tick = 0.3, 99.9
    assert gate.overloaded(now)
    gate._lag_window_min = 0.01
    assert not gate.overloaded(now)
    gate.inflight, gate._lag_window_min = 2, 0.5
    assert not gate.overloaded(now)  # a lone slow request does not shed the next
    gate.inflight, gate._due = 5, now - 0.3
    gate._lag_window_min = 0.01
    assert not gate.overloaded(now)  # a pending tick late by 300 ms, but a punctual one in the window
    gate._lag_last_tick = 99.0  # ... but no tick for a window: only the pending tick is left, and it is late
    assert gate.overloaded(now)
    gate._due = now - 0.05
    assert not gate.overloaded(now)  # not yet later than the target: it may still be punctual

    # time in app over the last full window: the fastest request counts; a busy window with none done is a stall
    gate._last_end, gate._last_fastest, gate._last_busy = now - 0.1, 0.8, True
    assert gate.overloaded(now)
    gate._last_fastest = 0.02
    assert not gate.overloaded(now)  # one quick answer in the window: no standing queue
    gate._last_fastest = None
    assert gate.overloaded(now)  # nothing finished with min_inflight in flight
    gate._last_busy = False
    assert not gate.overloaded(now)  # nothing finished because nothing came
    gate._last_fastest, gate._last_end = 0.8, now - 5
    assert not gate.overloaded(now)  # a stale window (the ticker stopped) says nothing
    gate._last_end, gate.inflight = now - 0.1, 2
    assert not gate.overloaded(now)  # under min_inflight

    merged = Limits().merged({"max_inflight": "7", "max_lag_ms": "50", "window_ms": "300", "max_sojourn_ms": "200",
                              "min_inflight": "nope"})
    assert (merged.max_inflight, merged.max_lag_s, merged.window_s, merged.max_sojourn_s, merged.min_inflight) == (
        7, 0.05, 0.3, 0.2, Limits().min_inflight)
    assert Limits().merged({"max_sojourn_ms": "inf"}).max_sojourn_s == Limits().max_sojourn_s
