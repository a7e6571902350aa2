"""The Ray dashboard is how operators see actor health (design card): it is on by default, bound to
loopback, and its actor list names every session (workspace and session id) and the control plane."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import pytest
from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled
from ray.util.state import list_actors

from wa_ray import DISPATCHER_NAME, NAMESPACE, SUPERVISOR_NAME, session_actor_name
from wa_ray.config import Settings
from wa_ray.entry.service import dashboard_options

WS = "dash"
SESSIONS = ("d1", "d2", "d3")


def test_dashboard_settings_default_on_and_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WA_DASHBOARD", raising=False)
    monkeypatch.delenv("WA_SESSION_HOSTING", raising=False)
    settings = Settings()
    assert settings.session_hosting == "actor"
    assert dashboard_options(settings) == {"include_dashboard": True, "dashboard_host": "127.0.0.1",
                                           "dashboard_port": None}  # Ray's 8265, or the next free one
    monkeypatch.setenv("WA_DASHBOARD_PORT", "18265")
    assert dashboard_options(Settings())["dashboard_port"] == 18265
    monkeypatch.setenv("WA_DASHBOARD", "0")
    assert dashboard_options(Settings()) == {"include_dashboard": False}


async def test_actor_list_names_every_session_and_the_control_plane(api, service) -> None:
    if service.settings.session_hosting != "actor":
        pytest.skip("host hosting: sessions are grains inside the BrowserHost, not actors of their own")
    assert service.dashboard_url, "the dashboard is on by default"
    parts = urlsplit(service.dashboard_url)
    assert parts.hostname == "127.0.0.1"
    assert service.config.dashboard_port == parts.port  # the egress guard refuses the port it really got
    for sid in SESSIONS:
        created = await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": sid})
        assert created.status_code in (200, 201), created.text

    wanted = {session_actor_name(WS, sid) for sid in SESSIONS}
    deadline = time.monotonic() + 20
    while True:
        actors = await asyncio.to_thread(
            list_actors, address=service.dashboard_url, filters=[("ray_namespace", "=", NAMESPACE)],
            detail=True, limit=10_000, raise_on_missing_output=False)
        alive = {a.name: a for a in actors if a.state == "ALIVE"}
        if wanted <= set(alive) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert wanted <= set(alive), sorted(alive)
    for sid in SESSIONS:
        actor = alive[session_actor_name(WS, sid)]
        assert actor.class_name == "SessionActor"
        assert actor.repr_name == f"SessionActor({WS}/{sid})"
    assert SUPERVISOR_NAME in alive and DISPATCHER_NAME in alive
    assert any(name.startswith("browser-host:") and a.class_name == "BrowserHost" for name, a in alive.items())

    # the dashboard's own HTTP API answers on loopback, to the cluster's token where Ray's token auth is on
    headers = get_auth_headers_if_auth_enabled({})
    async with httpx.AsyncClient(base_url=service.dashboard_url, timeout=10) as client:
        if headers:
            assert (await client.get("/api/version")).status_code == 401
        version = await client.get("/api/version", headers=headers)
    assert version.status_code == 200 and "ray_version" in version.json()

    for sid in SESSIONS:
        await api.delete(f"/v1/workspaces/{WS}/sessions/{sid}")
