"""POST /v1/workspaces/{ws}/messages:batch on the running service: each item accepted or refused as a call of
its own, in the items' order in the session's queue, its own Idempotency-Key honoured; the daily limit
counted per item (attacks: tests/security/test_batch_send_attacks.py)."""

from __future__ import annotations

import secrets

from tests.flows import provider_snapshot_expired
from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect

RECIPIENT = "15552230001"


async def _batch(client, ws: str, items: list[dict]):
    return await client.post(f"/v1/workspaces/{ws}/messages:batch", json={"messages": items})


async def _queued(service, ws: str, sid: str) -> list[str]:
    redis = connect(service.config.redis_url)
    try:
        return [fields["m"] for _, fields in await redis.xrange(keys.queue(ws, sid, "normal"))]
    finally:
        await redis.aclose()


async def test_each_item_is_a_call_of_its_own_in_order_with_its_own_idempotency_key(api, service) -> None:
    ws = f"batch-{secrets.token_hex(3)}"
    assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "s1"})).status_code == 201
    try:
        items = [
            {"to": RECIPIENT, "text": "one", "session_id": "s1", "idempotency_key": "k-1"},
            {"to": "+1 555 not a number", "text": "two", "session_id": "s1"},
            {"to": RECIPIENT, "text": "three", "session_id": "s1"},
            {"to": RECIPIENT, "text": "four", "session_id": "nope"},
            {"to": RECIPIENT, "type": "location", "latitude": 52.52, "longitude": 13.4,
             "session_id": "s1", "idempotency_key": "k-5"},
            {"to": RECIPIENT, "text": "six", "session_id": "s1", "idempotency_key": 7},
        ] + [{"to": RECIPIENT, "text": f"more {i}", "session_id": "s1"} for i in range(40)]
        r = await _batch(api, ws, items)
        assert r.status_code == 200, r.text
        out = r.json()
        statuses = [x["status"] for x in out["results"]]
        assert [x["index"] for x in out["results"]] == list(range(len(items)))
        assert statuses[:6] == [202, 422, 202, 404, 202, 422] and set(statuses[6:]) == {202}
        assert (out["accepted"], out["refused"]) == (len(items) - 3, 3)
        assert "not a number" not in r.text, "an item's 422 never echoes what it refused"
        ids = [x["message_id"] for x in out["results"] if x["status"] == 202]
        queued = await _queued(service, ws, "s1")
        assert queued == ids, ("queued in the batch's order", [ids.index(q) if q in ids else q for q in queued])

        # the same batch again: the keyed items are repeats (same ids, nothing queued twice), the others new
        again = (await _batch(api, ws, items)).json()["results"]
        assert again[0]["message_id"] == out["results"][0]["message_id"]
        assert again[4]["message_id"] == out["results"][4]["message_id"]
        assert again[2]["message_id"] != out["results"][2]["message_id"]
        assert len(await _queued(service, ws, "s1")) == 2 * len(ids) - 2
        reused = (await _batch(api, ws, [{"to": RECIPIENT, "text": "else", "session_id": "s1",
                                          "idempotency_key": "k-1"}])).json()["results"][0]
        assert (reused["status"], reused["error"]["code"]) == (409, "idempotency_key_reused")
        one = (await api.get(f"/v1/workspaces/{ws}/messages/{ids[0]}")).json()
        assert (one["to"], one["session_id"], one["status"]) == (RECIPIENT, "s1", "queued")
    finally:
        await api.delete(f"/v1/workspaces/{ws}/sessions/s1")


async def test_the_daily_limit_is_counted_per_item(api, service) -> None:
    ws = f"batch-day-{secrets.token_hex(3)}"
    assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "q"})).status_code == 201
    try:
        put = await api.put(f"/v1/workspaces/{ws}/limits", json={"max_numbers": None, "messages_per_day": 3})
        assert put.status_code == 200, put.text
        await provider_snapshot_expired(service)  # the ingress's provider snapshot carries the limit
        r = (await _batch(api, ws, [{"to": RECIPIENT, "text": f"n{i}", "session_id": "q"} for i in range(5)])).json()
        assert sorted(x["status"] for x in r["results"]) == [202, 202, 202, 409, 409]
        assert {x["error"]["code"] for x in r["results"] if x["status"] == 409} == {"plan_limit"}
        assert (await api.get(f"/v1/workspaces/{ws}/limits")).json()["usage"]["messages_today"] == 3
    finally:
        await api.put(f"/v1/workspaces/{ws}/limits", json={"max_numbers": None, "messages_per_day": None})
        await api.delete(f"/v1/workspaces/{ws}/sessions/q")
