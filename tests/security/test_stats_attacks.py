"""Attacks on the per-number stats route and on the per-session metrics, over real HTTP on loopback.

The attacker holds a key of its own workspace A; the victim B has a session with counted days. B's stats
are 404 to A however the request names them, a `days` out of 1..90 or not a number is 422 without echoing
it, and /metrics keeps its operator-only rules when the per-session series are on.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from wa_ray.serve_app.app import build_app
from wa_ray.serve_app.context import AppContext
from wa_ray.signing import HmacAuth, signed_headers
from wa_ray.storage import keys, tallies
from tests.conftest import ADMIN_KEY_ID, OPERATOR

pytestmark = pytest.mark.asyncio

RISK = {"score": 77, "level": "warning", "factors": {"new_contacts": 0.9}, "at": 1.0}


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


@pytest.fixture
async def victim(live_redis, unique_ws) -> AsyncIterator[tuple[str, str]]:
    """Workspace B with a session record and a counted day (no page: the route reads the registry and tallies)."""
    ws, sid = f"{unique_ws}-b", "victim"
    await live_redis.hset(keys.session(ws, sid), mapping={"workspace_id": ws, "session_id": sid,
                                                          "state": "qr_required", "since": 1.0})
    await tallies.bump(live_redis, ws, sid, "sent", 5)
    await live_redis.set(keys.risk(ws, sid), orjson.dumps(RISK))
    yield ws, sid
    await live_redis.delete(keys.session(ws, sid), keys.session_day_stats(ws, tallies.day_of()), keys.risk(ws, sid))


async def test_another_workspaces_session_stats_are_404(make_key, client_for, unique_ws, victim, api) -> None:
    ws_b, sid = victim
    own = await api.get(f"/v1/workspaces/{ws_b}/sessions/{sid}/stats")
    assert own.status_code == 200 and own.json()["totals"]["sent"] == 5  # B's day really is there
    assert own.json()["ban_risk"] == RISK
    for role in ("workspace", "read"):
        attacker = client_for(await make_key(role, unique_ws))
        paths = [f"/v1/workspaces/{ws_b}/sessions/{sid}/stats",  # B's path: B is not A's workspace
                 f"/v1/workspaces/{unique_ws}/sessions/{sid}/stats",  # A's path, B's session id
                 f"/v1/workspaces/{unique_ws}/sessions/no-such/stats",
                 f"/v1/workspaces/{unique_ws}/sessions/..%2F{sid}/stats",
                 f"/v1/workspaces/{unique_ws}/sessions/{'x' * 300}/stats"]
        bodies = []
        for path in paths:
            r = await attacker.get(path, params={"days": 90})
            assert _error(r) == (404, "not_found"), (role, path, r.text)
            assert "sent" not in r.text and sid not in r.text and "score" not in r.text
            bodies.append(r.json()["error"]["message"])
        # A's own path: a session of B and no session at all are told apart by nothing
        assert bodies[1] == bodies[2]


async def test_days_out_of_range_is_422_without_echo(api, victim) -> None:
    ws, sid = victim
    for days in ("0", "91", "-1", "abc", "7.5", "1e3", "99999999999999999999999", "", "<script>"):
        r = await api.get(f"/v1/workspaces/{ws}/sessions/{sid}/stats", params={"days": days})
        assert _error(r) == (422, "validation_error"), (days, r.text)
        if len(days) >= 3:
            assert days not in r.text, days
    for days in (1, 90):
        assert (await api.get(f"/v1/workspaces/{ws}/sessions/{sid}/stats", params={"days": days})).status_code == 200


async def test_stats_need_a_credential(raw, victim) -> None:
    ws, sid = victim
    r = await raw.get(f"/v1/workspaces/{ws}/sessions/{sid}/stats")
    assert _error(r) == (401, "unauthenticated") and "sent" not in r.text
    headers = signed_headers("no-such-key", "x" * 32, "GET", f"/v1/workspaces/{ws}/sessions/{sid}/stats", b"")
    assert _error(await raw.get(f"/v1/workspaces/{ws}/sessions/{sid}/stats", headers=headers))[0] == 403


async def test_metrics_auth_holds_with_per_session_series_on(service, admin_secret, make_key, unique_ws,
                                                             victim) -> None:
    """The real ingress app over the live Redis with WA_METRICS_PER_SESSION on (the shared service runs with
    the default, off): only an operator sees the series, and a tenant's key is no operator."""
    context = AppContext.build(dataclasses.replace(service.config, metrics_per_session=True))
    tenant = await make_key("workspace", unique_ws)
    base = {"transport": httpx.ASGITransport(app=build_app(context)), "base_url": "http://ingress", "timeout": 30}
    try:
        async with httpx.AsyncClient(**base) as anonymous:
            r = await anonymous.get("/metrics")
            assert _error(r) == (401, "unauthenticated") and "wa_session" not in r.text
            for headers in ({"Authorization": "Bearer " + secrets.token_urlsafe(32)}, {"Authorization": "Basic x"}):
                r = await anonymous.get("/metrics", headers=headers)
                assert _error(r) == (403, "forbidden") and "wa_session" not in r.text
            operator = await anonymous.get("/metrics", headers=OPERATOR)
            assert operator.status_code == 200 and "wa_session_connected" in operator.text
        async with httpx.AsyncClient(auth=HmacAuth(tenant.key_id, tenant.secret), **base) as worker:
            r = await worker.get("/metrics")
            assert _error(r) == (403, "forbidden") and "wa_session" not in r.text
        async with httpx.AsyncClient(auth=HmacAuth(ADMIN_KEY_ID, admin_secret), **base) as admin:
            assert "wa_session_series_omitted" in (await admin.get("/metrics")).text
    finally:
        await context.redis.aclose()
