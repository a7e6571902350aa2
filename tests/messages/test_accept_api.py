"""POST/GET /messages on the running service: durable 202, Idempotency-Key, errors, status history."""

from __future__ import annotations

from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect
from tests.messages.helpers import message, send

WS = "msg-accept"


async def test_accept_idempotency_and_history(api, service) -> None:
    assert (await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": "s1"})).status_code == 201
    redis = connect(service.config.redis_url)
    try:
        first = await send(api, WS, "15552220001", "order 42 shipped", session_id="s1", idempotency_key="ord-42")
        assert first["status"] == "queued" and first["provider"] == "webjs"
        # the 202 means it is in Redis: record, history and queue entry
        assert await redis.hget(keys.message(WS, first["message_id"]), "status") == "queued"
        assert await redis.xlen(keys.queue(WS, "s1", "normal")) == 1

        again = await send(api, WS, "15552220001", "order 42 shipped", session_id="s1", idempotency_key="ord-42")
        assert again["message_id"] == first["message_id"]
        assert await redis.xlen(keys.queue(WS, "s1", "normal")) == 1  # never a second copy

        reused = await api.post(f"/v1/workspaces/{WS}/messages", headers={"Idempotency-Key": "ord-42"},
                                json={"to": "15552220001", "text": "something else", "session_id": "s1"})
        assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"

        urgent = await send(api, WS, "15552220001", "now", session_id="s1", priority="urgent")
        assert await redis.xlen(keys.queue(WS, "s1", "urgent")) == 1 and urgent["message_id"] != first["message_id"]

        got = await message(api, WS, first["message_id"])
        assert (got["status"], got["provider"], got["session_id"], got["to"]) == ("queued", "webjs", "s1", "15552220001")
        assert [h["status"] for h in got["history"]] == ["queued"]
    finally:
        await redis.aclose()
        await api.delete(f"/v1/workspaces/{WS}/sessions/s1")


async def test_refusals(api, service) -> None:
    unknown = await api.post(f"/v1/workspaces/{WS}-x/messages", json={"to": "15552220001", "text": "x",
                                                                       "session_id": "nope"})
    assert unknown.status_code == 404
    none = await api.post(f"/v1/workspaces/{WS}-y/messages", json={"to": "15552220001", "text": "x"})
    assert none.status_code == 409 and none.json()["error"]["code"] == "no_session"
    bad = await api.post(f"/v1/workspaces/{WS}-y/messages", json={"to": "+1 555", "text": "x", "priority": "asap"})
    assert bad.status_code == 422
    assert (await api.get(f"/v1/workspaces/{WS}/messages/msg_doesnotexist")).status_code == 404
