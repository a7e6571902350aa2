"""Attacks on POST /v1/workspaces/{ws}/messages:batch over real HTTP: another workspace's path and sessions,
a read-only key, batches that are not batches (empty, 1,001 items, not objects, unknown fields), a body over
its 4 MiB, broken JSON: refused whole, nothing queued."""

from __future__ import annotations

import secrets

import orjson

from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect

RECIPIENT = "15552230001"
JSON = {"Content-Type": "application/json"}


async def _batch(client, ws: str, items: list[dict]):
    return await client.post(f"/v1/workspaces/{ws}/messages:batch", json={"messages": items})


async def _queued(service, ws: str, sid: str) -> list[str]:
    redis = connect(service.config.redis_url)
    try:
        return [fields["m"] for _, fields in await redis.xrange(keys.queue(ws, sid, "normal"))]
    finally:
        await redis.aclose()


async def test_attacks_on_the_batch(api, service, make_key, client_for) -> None:
    mine, theirs = f"batch-a-{secrets.token_hex(3)}", f"batch-b-{secrets.token_hex(3)}"
    for ws in (mine, theirs):
        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "s1"})).status_code == 201
    try:
        tenant = client_for(await make_key("workspace", mine, rate_per_s=0))
        reader = client_for(await make_key("read", mine, rate_per_s=0))
        # another workspace: its path is not this key's, and its session ids mean nothing here
        assert (await _batch(tenant, theirs, [{"to": RECIPIENT, "text": "x"}])).status_code == 404
        assert (await _batch(reader, mine, [{"to": RECIPIENT, "text": "x", "session_id": "s1"}])).status_code == 403
        assert await _queued(service, theirs, "s1") == []
        # not a batch at all: refused whole, nothing queued
        for body in ({"messages": []}, {"messages": [{"to": RECIPIENT, "text": "x"}] * 1001}, {"messages": "x"},
                     {"messages": [1, 2]}, {"items": []}, {"messages": [], "extra": 1}):
            r = await tenant.post(f"/v1/workspaces/{mine}/messages:batch", content=orjson.dumps(body), headers=JSON)
            assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), (str(body)[:60], r.text)
            assert "dictionary or object" not in r.text, "the body was read as JSON"
        big = {"messages": [{"to": RECIPIENT, "text": "é" * 4096, "session_id": "s1"}] * 1000}  # ~8 MiB
        r = await tenant.post(f"/v1/workspaces/{mine}/messages:batch", content=orjson.dumps(big), headers=JSON)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text[:200]
        r = await tenant.post(f"/v1/workspaces/{mine}/messages:batch", content=b'{"messages": [', headers=JSON)
        assert r.status_code == 400
        assert await _queued(service, mine, "s1") == []
    finally:
        for ws in (mine, theirs):
            await api.delete(f"/v1/workspaces/{ws}/sessions/s1")
