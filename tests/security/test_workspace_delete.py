"""Deleting a workspace over real HTTP (`DELETE /v1/workspaces/{ws}`): admin keys only, and afterwards no key,
member, record or file of the workspace remains, while the neighbour `ws + "x"` (whose id starts with the
whole id) keeps everything."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage import campaigns, keys
from wa_ray.storage.media import media_root

pytestmark = pytest.mark.asyncio

HOOK = "http://127.0.0.1:9/hook"
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


async def _furnish(client: httpx.AsyncClient, ws: str) -> None:
    """A webhook, an endpoint and a message queued on the workspace."""
    r = await client.put(f"/v1/workspaces/{ws}/webhook", json={"url": HOOK, "secret": SECRET})
    assert r.status_code == 204, r.text
    r = await client.post(f"/v1/workspaces/{ws}/webhooks", json={"url": HOOK})
    assert r.status_code == 201, r.text


async def _remnants(redis, ws: str) -> list[str]:
    """Every key, member or field that still names `ws` (never `ws + 'x'`), and every record it owns. A key of
    the workspace carries its hash tag, `wa:{ws}:...`."""
    named = re.compile(rf"(^|[:/{{]){re.escape(ws)}($|[:/}}])")
    found = [name async for name in redis.scan_iter(match="*", count=1000) if named.search(name)]
    for name in (keys.workspaces(), keys.webhook_workspaces(), keys.provider_workspaces(), keys.cloud_workspaces(),
                 keys.webhook_endpoint_lanes(), keys.all_sessions(), campaigns.ACTIVE):
        found += [f"{name} {m}" for m in await redis.smembers(name) if m == ws or m.startswith(ws + "/")]
    found += [f"expiry {m}" for m in await redis.zrange(keys.media_expiry(), 0, -1) if m.startswith(ws + "/")]
    found += [f"cursor {f}" for f in await redis.hkeys(keys.metrics_cursor()) if f == ws]
    for key_id in await redis.smembers(keys.api_key_index()):
        if await redis.hget(keys.api_key(key_id), "workspace_id") == ws:
            found.append(f"api key {key_id}")
    return found


async def test_delete_workspace_removes_everything_it_owned(service, api, make_key, client_for, unique_ws,
                                                            live_redis) -> None:
    ws, neighbour = unique_ws, unique_ws + "x"
    owner = client_for(await make_key("workspace", ws))
    neighbour_key = await make_key("workspace", neighbour)
    next_door = client_for(neighbour_key)
    media = media_store_for(live_redis, service.config)
    stored = {w: (await media.put_bytes(w, b"file of " + w.encode(), mimetype="text/plain")).media_id
              for w in (ws, neighbour)}
    for client, where in ((owner, ws), (next_door, neighbour)):
        await _furnish(client, where)
    assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "s1"})).status_code == 201
    deadline = time.monotonic() + 30
    while (await api.get(f"/v1/workspaces/{ws}/sessions/s1")).json()["state"] != "qr_required":
        assert time.monotonic() < deadline, "no QR"
        await asyncio.sleep(0.2)
    sent = await owner.post(f"/v1/workspaces/{ws}/messages", json={"session_id": "s1", "to": "15550999",
                                                                  "text": "waits for a link"})
    assert sent.status_code == 202, sent.text
    other = await next_door.post(f"/v1/workspaces/{neighbour}/messages", json={"to": "15550999", "text": "x"})
    neighbour_keys = keys.workspace_prefix(neighbour) + "*"
    neighbour_before = sorted([n async for n in live_redis.scan_iter(match=neighbour_keys, count=1000)])
    assert len(await _remnants(live_redis, ws)) >= 10 and neighbour_before

    # tenants cannot delete a workspace, not even their own
    reader = client_for(await make_key("read", ws))
    for client in (owner, reader, next_door):
        assert _error(await client.delete(f"/v1/workspaces/{ws}")) == (403, "forbidden")
    assert (await api.get(f"/v1/workspaces/{ws}/sessions/s1")).status_code == 200

    r = await api.delete(f"/v1/workspaces/{ws}")
    assert r.status_code == 200, r.text
    counts = r.json()
    assert counts["sessions"] == 1 and counts["messages"] == 1 and counts["api_keys"] == 2 and counts["media"] == 1
    assert counts["keys"] >= 5 and counts["memberships"] >= 4, counts
    # a delivery in flight at the delete still settles (a dead letter): the supervisor's follow-up removes it
    deadline = time.monotonic() + 15
    while (left := await _remnants(live_redis, ws)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert left == []
    assert not (media_root(service.config.data_dir) / ws).exists()
    assert not (Path(service.config.data_dir) / "sessions" / ws / "s1").exists()  # the auth state went too
    assert (await owner.get(f"/v1/workspaces/{ws}/webhooks")).status_code == 403  # its keys are revoked

    # the neighbour, whose id starts with the deleted workspace's id, is intact
    neighbour_after = sorted([n async for n in live_redis.scan_iter(match=neighbour_keys, count=1000)])
    assert set(neighbour_before) <= set(neighbour_after), set(neighbour_before) - set(neighbour_after)
    assert (await next_door.get(f"/v1/workspaces/{neighbour}/webhooks")).json()["items"]
    assert await media.info(neighbour, stored[neighbour]) is not None
    if other.status_code == 202:
        assert await live_redis.exists(keys.message(neighbour, other.json()["message_id"]))
    assert neighbour in await live_redis.smembers(keys.webhook_workspaces())

    # a repeat finds nothing; a malformed id is 404 without echo
    again = await api.delete(f"/v1/workspaces/{ws}")
    assert again.status_code == 200 and again.json() == {k: 0 for k in counts}, again.text
    r = await api.delete("/v1/workspaces/Bad..Id")
    assert r.status_code == 404 and "Bad..Id" not in r.text
    await api.delete(f"/v1/workspaces/{neighbour}")
