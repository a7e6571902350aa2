"""Per-number stats and the per-session metrics on the real service: a linked session sends through the
simulator, the recipients' phones ack (delivered, read, or nothing), and the stats route and /metrics show it.

Received and replies are bumped by the inbound hook (issue #15 part B); here the route is checked to read
what `tallies.bump` wrote, so this test does not depend on that hook.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from wa_ray.serve_app.app import build_app
from wa_ray.serve_app.context import AppContext
from wa_ray.storage import keys, tallies
from wa_ray.storage.redis_client import connect
from wa_ray.storage.registry import SessionRegistry
from tests.conftest import OPERATOR
from tests.events import collect_events
from tests.flows import link_session, stream_url, wait_state
from tests.messages.helpers import put_pacing, send, wait_status

pytestmark = pytest.mark.asyncio


def _number() -> str:
    return "1555" + str(secrets.randbelow(10**7)).zfill(7)


@pytest.fixture
async def live_redis(service) -> AsyncIterator[aioredis.Redis]:
    client = connect(service.config.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def linked(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, service) -> AsyncIterator[tuple[str, str]]:
    ws, sid = f"stats-{secrets.token_hex(3)}", "main"
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, sid, _number())
    await put_pacing(api, ws, enabled=False)
    yield ws, sid
    await api.delete(f"/v1/workspaces/{ws}/sessions/{sid}")


async def _stats(api: httpx.AsyncClient, ws: str, sid: str, days: int = 7) -> dict:
    response = await api.get(f"/v1/workspaces/{ws}/sessions/{sid}/stats", params={"days": days})
    assert response.status_code == 200, response.text
    return response.json()


def _families(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def test_stats_count_sends_acks_and_uptime(api, phone_api, service, linked, live_redis) -> None:
    ws, sid = linked
    fresh = await _stats(api, ws, sid)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert [d["day"] for d in fresh["days"]][-1] == today and len(fresh["days"]) == 7
    assert fresh["days"][-1]["uptime_s"] > 0  # connected now: the running stretch counts
    assert fresh["totals"]["sent"] == 0

    # three recipients: one reads, one only gets it delivered, one's phone never acks
    reads, delivers, silent = _number(), _number(), _number()
    assert (await phone_api.put(f"/_phone/{delivers}/config", json={"read_ms": None})).status_code == 200
    assert (await phone_api.put(f"/_phone/{silent}/config",
                                json={"delivered_ms": None, "read_ms": None})).status_code == 200
    ids = {to: (await send(api, ws, to, f"stats to {to}", session_id=sid))["message_id"]
           for to in (reads, delivers, silent)}
    await wait_status(api, ws, ids[reads], {"read"})
    await wait_status(api, ws, ids[delivers], {"delivered"})
    await wait_status(api, ws, ids[silent], {"sent"})

    # inbound counts come from the inbound hook; the route shows whatever the day tallies hold
    await tallies.bump(live_redis, ws, sid, "received", 4)
    await tallies.bump(live_redis, ws, sid, "replies", 2)
    await tallies.bump(live_redis, ws, sid, "refused", 1)  # counted by the inbound ack hook (actors/inbound.py)

    body = await _stats(api, ws, sid)
    row = body["days"][-1]
    assert (row["sent"], row["delivered"], row["read"], row["failed"]) == (3, 2, 1, 0)
    assert (row["received"], row["replies"], row["refused"]) == (4, 2, 1)
    assert body["totals"] | {"uptime_s": 0} == {k: v for k, v in row.items() if k != "day"} | {"uptime_s": 0}
    assert all(d[m] == 0 for d in body["days"][:-1] for m in ("sent", "read", "received"))
    assert body["session_id"] == sid and len((await _stats(api, ws, sid, 1))["days"]) == 1
    assert body["ban_risk"] is None or isinstance(body["ban_risk"]["score"], int | float)  # Part B's evaluation
    assert len((await _stats(api, ws, sid, 90))["days"]) == 90

    # leaving connected credits the stretch to the day; the route then adds the new stretch on top
    before = float(await live_redis.hget(keys.session_day_stats(ws, tallies.day_of()), f"{sid}|uptime_s") or 0)
    restarted = await api.post(f"/v1/workspaces/{ws}/sessions/{sid}/restart")
    assert restarted.status_code == 200, restarted.text
    await wait_state(api, ws, sid, "connected", timeout=60)
    stored = float(await live_redis.hget(keys.session_day_stats(ws, tallies.day_of()), f"{sid}|uptime_s") or 0)
    assert stored > before and stored > 0
    assert (await _stats(api, ws, sid))["days"][-1]["uptime_s"] >= round(stored, 1)


async def test_per_session_series_are_off_by_default(api, service, linked) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, headers=OPERATOR, timeout=30) as prom:
        scrape = await prom.get("/metrics")
    assert scrape.status_code == 200
    assert "wa_session_" not in scrape.text and "wa_sessions{" in scrape.text


async def _ingress(service, **options: object) -> tuple[AppContext, httpx.AsyncClient]:
    """The real ingress app over the live Redis, built with these settings (the shared service runs with the
    defaults; a second Ray service per setting would be the same app at a much higher cost)."""
    context = AppContext.build(dataclasses.replace(service.config, **options))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(context)), base_url="http://ingress",
                               timeout=30)
    return context, client


async def test_per_session_series_when_on_and_bounded(api, service, linked, live_redis) -> None:
    ws, sid = linked
    await send(api, ws, _number(), "one for the metrics", session_id=sid)
    await tallies.bump(live_redis, ws, sid, "received", 1)
    # a second number, registered but never started (no page), with a known ban-risk evaluation
    registry, other = SessionRegistry(live_redis), "risky"
    await registry.register(ws, other, "no-node")
    await live_redis.set(keys.risk(ws, other), orjson.dumps({"score": 64.5, "level": "ok", "factors": {}, "at": 1}))
    context, client = await _ingress(service, metrics_per_session=True, metrics_session_max=100_000)
    try:
        async with client:
            samples = _families((await client.get("/metrics", headers=OPERATOR)).text)
        total = await live_redis.scard(keys.all_sessions())
        connected = {(s.labels["workspace"], s.labels["session"]): s.value for s in samples["wa_session_connected"]}
        assert len(connected) == total and connected[(ws, sid)] == 1
        mine = {s.labels["metric"]: s.value for s in samples["wa_session_messages_today"]
                if (s.labels["workspace"], s.labels["session"]) == (ws, sid)}
        assert mine["received"] == 1 and set(mine) == {"sent", "delivered", "read", "failed", "received", "replies"}
        assert samples["wa_session_series_omitted"][0].value == 0
        risk = {(s.labels["workspace"], s.labels["session"]): s.value for s in samples["wa_session_ban_risk"]}
        assert risk[(ws, other)] == 64.5 and connected[(ws, other)] == 0
    finally:
        await context.redis.aclose()
        await registry.remove(ws, other)
        await live_redis.delete(keys.risk(ws, other))

    context, client = await _ingress(service, metrics_per_session=True, metrics_session_max=1)
    try:
        async with client:
            samples = _families((await client.get("/metrics", headers=OPERATOR)).text)
        assert len(samples["wa_session_connected"]) == 1
        assert len(samples["wa_session_messages_today"]) == 6
        assert samples["wa_session_series_omitted"][0].value == await live_redis.scard(keys.all_sessions()) - 1
    finally:
        await context.redis.aclose()
