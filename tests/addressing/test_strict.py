"""Issue 14, reply from the same number: `strict: true` with `session_id` never leaves from another session
or provider. A session that cannot send now is answered at once (409 session_unavailable with its state);
an accepted strict message that WhatsApp refuses fails in its session, where the same message without
strict fails over to the Cloud API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from tests.addressing.test_groups_and_lid import cloud_block
from tests.events import collect_events
from tests.flows import link_session, stream_url
from wa_ray.serve_app.send_models import SendMessage
from wa_ray.storage.messages import META, WEBJS, MessageStore, OutboundMessage, may_move

WS = "addr-strict"
SESSION_NUMBER = "15553420"
PHONE = "15553421"


def test_strict_needs_a_session_id() -> None:
    adapter = TypeAdapter(SendMessage)
    try:
        adapter.validate_python({"to": PHONE, "text": "x", "strict": True})
    except ValidationError as exc:
        assert exc.errors()[0]["type"] == "strict_needs_session"
    else:
        raise AssertionError("strict without session_id was accepted")
    assert adapter.validate_python({"to": PHONE, "text": "x", "strict": True, "session_id": "s1"}).strict is True
    assert adapter.validate_python({"to": PHONE, "text": "x"}).strict is False


async def test_a_strict_record_never_moves(redis) -> None:
    store = MessageStore(redis)
    msg = OutboundMessage("msg_strict001", "ws-strict", "s1", PHONE, "t", "normal", WEBJS, strict=True)
    assert (await store.accept(msg, None)).created
    record = await store.record(msg.workspace_id, msg.message_id)
    assert record["strict"] == "1"
    assert not may_move(record, META) and not may_move(record, WEBJS)
    assert not await store.reroute(msg.message_id, record, META, "", "session down")
    assert not await store.reroute(msg.message_id, record, WEBJS, "s2", "session down")
    assert (await store.record(msg.workspace_id, msg.message_id))["session_id"] == "s1"


async def _send(api: httpx.AsyncClient, ws: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/workspaces/{ws}/messages", json={"to": PHONE, "text": "hello", **body})


async def test_strict_at_accept(api: httpx.AsyncClient, service) -> None:
    ws = "addr-strict-accept"
    missing = await _send(api, ws, strict=True)
    assert missing.status_code == 422, missing.text
    unknown = await _send(api, ws, strict=True, session_id="nosuch")
    assert unknown.status_code == 404, unknown.text
    created = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "waiting"})
    assert created.status_code == 201, created.text
    refused = await _send(api, ws, strict=True, session_id="waiting")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "session_unavailable"
    assert error["details"]["state"] in ("initializing", "qr_required")
    # without strict the same message is accepted: it waits for (or fails over from) that session as today
    assert (await _send(api, ws, session_id="waiting")).status_code == 202
    await api.delete(f"/v1/workspaces/{ws}/sessions/waiting")


async def test_strict_fails_in_its_session_where_plain_fails_over(api: httpx.AsyncClient,
                                                                  phone_api: httpx.AsyncClient, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "st1", SESSION_NUMBER)
        # a Cloud API that looks healthy, as the failover target of the plain message
        put = await api.put(f"/v1/workspaces/{WS}/provider", json={"priority": "webjs", "cloud": cloud_block("740011")})
        assert put.status_code == 200, put.text
        strict_ok = await _send(api, WS, strict=True, session_id="st1", text="strict and fine")
        assert strict_ok.status_code == 202 and strict_ok.json()["provider"] == WEBJS
        ok_id = strict_ok.json()["message_id"]
        await events.wait_for(lambda e: e["type"] == "message.sent" and e["data"]["message_id"] == ok_id)

        # WhatsApp refuses every message to this phone now (ack -1)
        cfg = await phone_api.put(f"/_phone/{PHONE}/config", json={"fail_rate": 1.0})
        assert cfg.status_code == 200, cfg.text
        strict = await _send(api, WS, strict=True, session_id="st1", text="strict refused")
        plain = await _send(api, WS, session_id="st1", text="plain refused")
        assert strict.status_code == 202 and plain.status_code == 202
        sid, pid = strict.json()["message_id"], plain.json()["message_id"]
        failed = await events.wait_for(lambda e: e["type"] == "message.failed" and e["data"]["message_id"] == sid)
        assert failed["data"]["provider"] == WEBJS
        record = (await api.get(f"/v1/workspaces/{WS}/messages/{sid}")).json()
        assert (record["status"], record["provider"], record["session_id"], record["failover"], record["strict"]) == (
            "failed", WEBJS, "st1", False, True)
        assert all(h.get("provider", WEBJS) == WEBJS for h in record["history"])
        # the plain one was handed to the Cloud API (what happens to it there is not this test's business)
        for _ in range(200):
            plain_record = (await api.get(f"/v1/workspaces/{WS}/messages/{pid}")).json()
            if plain_record["failover"]:
                break
            await asyncio.sleep(0.05)
        assert plain_record["failover"] is True
        assert any(h.get("provider") == META for h in plain_record["history"]), plain_record["history"]
        await phone_api.put(f"/_phone/{PHONE}/config", json={"fail_rate": 0.0})
