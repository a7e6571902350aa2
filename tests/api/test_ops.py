"""/healthz, /readyz and /metrics on the live service; readiness failing with reasons; the audit trail."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from wa_ray.serve_app.app import build_app
from wa_ray.serve_app.context import AppContext
from wa_ray.storage import keys
from wa_ray.storage.events import EventLog
from tests.conftest import OPERATOR
from wa_ray.events import Event

pytestmark = pytest.mark.asyncio


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text, whatever the label order; 0 when absent (never incremented)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


async def test_health_and_readiness(raw, api) -> None:
    assert (await raw.get("/healthz")).json() == {"status": "ok"}
    assert (await raw.get("/readyz")).json() == {"ready": True}  # the details are an operator's
    for ready in (await raw.get("/readyz", headers=OPERATOR), await api.get("/readyz")):
        assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True and body["status"] == "ready" and body["reasons"] == []
    assert set(body["checks"]) == {"redis", "ray", "supervisor", "browser_host"}
    assert "reachable" in body["checks"]["browser_host"]["detail"]


async def test_not_ready_names_the_reason(service) -> None:
    """The same app over a Redis that is not there: 503, and the reason says which dependency."""
    from dataclasses import replace

    from wa_ray.storage.embedded import free_port

    config = replace(service.config, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = build_app(AppContext.build(config))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/readyz", headers=OPERATOR)
        anonymous = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
    assert (anonymous.status_code, anonymous.json()) == (503, {"ready": False})
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert [reason.split(":")[0] for reason in r.json()["reasons"]] == ["redis"]


async def test_metrics_follow_a_session_and_a_message(service, api, raw, unique_ws) -> None:
    created = await api.post(f"/v1/workspaces/{unique_ws}/sessions", json={"session_id": "m1"})
    assert created.status_code == 201, created.text
    try:
        deadline = time.monotonic() + 30
        while (await api.get(f"/v1/workspaces/{unique_ws}/sessions/m1")).json()["state"] != "qr_required":
            assert time.monotonic() < deadline, "no QR"
            await asyncio.sleep(0.2)
        sent = await api.post(f"/v1/workspaces/{unique_ws}/messages",
                              json={"session_id": "m1", "to": "15550999", "text": "waits for a link"})
        assert sent.status_code == 202, sent.text
        metrics = await raw.get("/metrics", headers=OPERATOR)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        for family in ("wa_sessions", "wa_messages_total", "wa_qr_generation_seconds", "wa_send_latency_seconds",
                       "wa_page_send_seconds", "wa_webhook_deliveries_total", "wa_webhook_dead_letters",
                       "wa_queue_depth", "wa_queue_pending", "wa_ingress_sse_clients"):
            assert f"# TYPE {family} " in text, family
        assert sample(text, "wa_sessions", state="qr_required") >= 1
        assert sample(text, "wa_qr_generation_seconds_count") >= 1
        assert sample(text, "wa_qr_generation_seconds_bucket", le="+Inf") == sample(
            text, "wa_qr_generation_seconds_count")
        assert sample(text, "wa_messages_total", status="queued", provider="webjs") >= 1
        assert sample(text, "wa_queue_depth", priority="normal") >= 1  # not linked: it waits in the queue
        assert sample(text, "wa_events_total", type="session.qr") >= 1
    finally:
        await api.delete(f"/v1/workspaces/{unique_ws}/sessions/m1")


async def test_metrics_count_each_event_once_across_concurrent_scrapes(raw, live_redis, unique_ws) -> None:
    """The fold is guarded by WATCH on its cursors: three replicas scraping at once still count once."""
    await live_redis.sadd(keys.workspaces(), unique_ws)
    log = EventLog(live_redis)
    t0 = time.time()
    await log.publish(Event("session.status", unique_ws, "h1", {"state": "initializing"}, ts=t0))
    await log.publish(Event("session.qr", unique_ws, "h1", {"qr": "x", "seq": 1}, ts=t0 + 1.5))
    kind = f"test.once.{unique_ws}"
    for _ in range(7):
        await log.publish(Event(kind, unique_ws, None, {}))
    before = (await raw.get("/metrics", headers=OPERATOR)).text  # folds the seven (and anything else pending)
    assert sample(before, "wa_events_total", type=kind) == 7
    for _ in range(5):
        await log.publish(Event(kind, unique_ws, None, {}))
    scrapes = await asyncio.gather(*(raw.get("/metrics", headers=OPERATOR) for _ in range(3)))
    assert all(s.status_code == 200 for s in scrapes)
    assert sample((await raw.get("/metrics", headers=OPERATOR)).text, "wa_events_total", type=kind) == 12
    # the synthetic session took 1.5 s from start to QR: it sits in the (1, 2] bucket
    assert sample(before, "wa_qr_generation_seconds_bucket", le="2") - sample(
        before, "wa_qr_generation_seconds_bucket", le="1") >= 1


async def test_audit_records_who_what_when_outcome(service, api, raw, make_key, client_for, unique_ws) -> None:
    writer_key = await make_key("workspace", unique_ws)
    writer = client_for(writer_key)
    reader = client_for(await make_key("read", unique_ws))
    started = time.time()
    assert (await writer.put(f"/v1/workspaces/{unique_ws}/webhook",
                             json={"url": "http://127.0.0.1:9/h", "secret": "s" * 20})).status_code == 204
    assert (await writer.post(f"/v1/workspaces/{unique_ws}/stream-tokens")).status_code == 201
    assert (await reader.post(f"/v1/workspaces/{unique_ws}/sessions", json={"session_id": "no"})).status_code == 403
    assert (await writer.get(f"/v1/workspaces/{unique_ws}/sessions")).status_code == 200  # reads are not audited
    anonymous = await raw.post(f"/v1/workspaces/{unique_ws}/sessions", json={},
                               headers={"X-Key-Id": "forged-admin"})
    assert anonymous.status_code == 401

    page = await api.get(f"/v1/audit?workspace_id={unique_ws}&limit=10")
    assert page.status_code == 200, page.text
    entries = page.json()["entries"]
    assert [(e["method"], e["route"], e["status"], e["outcome"]) for e in entries] == [
        ("POST", "/v1/workspaces/{ws}/sessions", 403, "denied"),
        ("POST", "/v1/workspaces/{ws}/stream-tokens", 201, "ok"),
        ("PUT", "/v1/workspaces/{ws}/webhook", 204, "ok"),
    ]
    assert entries[2]["who"] == f"key:{writer_key.key_id}" and entries[2]["role"] == "workspace"
    assert all(started - 1 <= e["ts"] <= time.time() + 1 and e["request_id"] for e in entries)
    assert entries[2]["request_id"] != entries[1]["request_id"]
    # the unauthenticated call is in the anonymous stream, which anyone can fill without touching the above
    anonymous_page = await api.get(f"/v1/audit?workspace_id={unique_ws}&limit=10&anonymous=true")
    assert [(e["who"], e["claimed_key"], e["status"], e["outcome"]) for e in anonymous_page.json()["entries"]] == [
        ("anonymous", "forged-admin", 401, "denied")]
    assert "s" * 20 not in page.text  # bodies (webhook secrets, message text) are never audited

    by_key = await api.get(f"/v1/audit?who=key:{writer_key.key_id}&limit=1")
    assert [e["route"] for e in by_key.json()["entries"]] == ["/v1/workspaces/{ws}/stream-tokens"]
    older = await api.get(f"/v1/audit?who=key:{writer_key.key_id}&before={by_key.json()['next_before']}")
    assert [e["route"] for e in older.json()["entries"]] == ["/v1/workspaces/{ws}/webhook"]


async def test_spec_is_served_with_docs(raw) -> None:
    spec = (await raw.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/v1/workspaces/{ws}/sessions", "/v1/workspaces/{ws}/sessions/{sid}",
                 "/v1/workspaces/{ws}/sessions/{sid}/restart", "/v1/workspaces/{ws}/sessions/{sid}/logout",
                 "/v1/workspaces/{ws}/sessions/{sid}/qr", "/v1/workspaces/{ws}/messages",
                 "/v1/workspaces/{ws}/messages/{mid}", "/v1/workspaces/{ws}/events", "/v1/workspaces/{ws}/webhook",
                 "/v1/workspaces/{ws}/stream-tokens", "/v1/console-tokens", "/v1/audit", "/healthz", "/readyz",
                 "/metrics", "/v1/workspaces/{ws}/provider", "/webhooks/meta"):
        assert path in paths, path
    assert {"KeyId", "Timestamp", "Nonce", "Signature"} <= set(spec["components"]["securitySchemes"])
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["error"]
    for path, item in paths.items():
        for method, op in item.items():
            if path.startswith("/v1/"):
                assert {"401", "403", "404", "429"} <= set(op["responses"]), (method, path)
    docs = await raw.get("/docs")
    assert docs.status_code == 200 and "/docs/swagger-ui-bundle.js" in docs.text and "//" not in docs.text
    assert "/openapi.json" in (await raw.get("/docs/start.js")).text
