"""Attacks on issue 14's addressing, strict replies and pairing-code login, over real HTTP on loopback:
malformed group and @lid recipients are 422 (never a 500, never echoed), a strict send cannot name its
session away (422 without one, 404 for another workspace's, the same as one that does not exist), a bad
pairing phone is 422, and a pairing code appears in its event and nowhere else: not in the session's
record or any answer, not in the service's logs, not in Redis outside the event stream."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
import ray

from tests.events import collect_events
from tests.flows import stream_url
from wa_ray.storage import keys

pytestmark = pytest.mark.asyncio

BAD_RECIPIENTS = [
    "abc@g.us", "1@g.us", "1234@g.us", "12345@g.us@g.us", "12345-@g.us", "-12345@g.us", "12345--1@g.us",
    "1" * 21 + "@g.us", "123@lid\n", "123@lid ", " 123@lid", "1" * 21 + "@lid", "123@LID", "@lid", "lid",
    "123@lid/../x", "12345@g.us/../../admin", "%00@lid", "123\x00@lid", "١٢٣٤٥@lid", "12345@g.us'--",
    "123@s.whatsapp.net", "15551230001@c.us", "123@broadcast", "status@broadcast", "0@lid@g.us",
]
BAD_TYPED = [123456789012345, ["12345@g.us"], {"id": "12345@g.us"}, None, True, 1.5]
BAD_PHONES = ["", "abc", "+15553440", "0155534400", "1555", "1" * 16, "1555 3440", "1555-3440", "١٥٥٥٣٤٤٠",
              "15553440\n", "15553440@c.us", "15553440@lid"]
BAD_TYPED_PHONES = [15553440, ["15553440"], {"n": "15553440"}, True]


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


@pytest.mark.parametrize("to", BAD_RECIPIENTS)
async def test_malformed_group_and_lid_recipients_are_422_unechoed(make_key, client_for, unique_ws, to) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    for body in ({"to": to, "text": "hi"}, {"to": to, "type": "poll", "name": "q", "options": ["a", "b"]},
                 {"to": to, "text": "hi", "strict": True, "session_id": "s1"}):
        r = await client.post(f"/v1/workspaces/{unique_ws}/messages", json=body)
        assert _error(r) == (422, "validation_error"), (to, r.text)
        assert to.strip() not in r.text or to.strip() in ("lid",), (to, r.text)


@pytest.mark.parametrize("to", BAD_TYPED)
async def test_recipients_of_the_wrong_type_are_422(make_key, client_for, unique_ws, to) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    r = await client.post(f"/v1/workspaces/{unique_ws}/messages", json={"to": to, "text": "hi"})
    assert _error(r) == (422, "validation_error"), r.text


async def test_strict_without_a_session_is_422(make_key, client_for, unique_ws) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    path = f"/v1/workspaces/{unique_ws}/messages"
    for body in ({"to": "15553440", "text": "x", "strict": True},
                 {"to": "15553440", "text": "x", "strict": True, "session_id": None},
                 {"to": "12345678901@g.us", "text": "x", "strict": True},
                 {"to": "15553440", "type": "reaction", "message_id": "msg_x", "emoji": "", "strict": True}):
        r = await client.post(path, json=body)
        assert _error(r) == (422, "validation_error"), (body, r.text)
        assert "strict_needs_session" in r.text
    for bad in ("yes", 2, [True], {"on": True}):
        r = await client.post(path, json={"to": "15553440", "text": "x", "strict": bad, "session_id": "s1"})
        assert _error(r) == (422, "validation_error"), (bad, r.text)


async def test_strict_to_another_workspaces_session_is_404(make_key, client_for, unique_ws) -> None:
    victim_ws = unique_ws
    victim = client_for(await make_key("workspace", victim_ws))
    sid = f"victim-{secrets.token_hex(3)}"
    created = await victim.post(f"/v1/workspaces/{victim_ws}/sessions", json={"session_id": sid})
    assert created.status_code == 201, created.text
    try:
        attacker_ws = f"ws-{secrets.token_hex(4)}"
        attacker = client_for(await make_key("workspace", attacker_ws))
        body = {"to": "15553440", "text": "x", "strict": True, "session_id": sid}
        # the victim's session named from the attacker's own workspace: unknown there, as a missing one is
        mine = await attacker.post(f"/v1/workspaces/{attacker_ws}/messages", json=body)
        missing = await attacker.post(f"/v1/workspaces/{attacker_ws}/messages",
                                      json={**body, "session_id": "never-was"})
        assert _error(mine) == _error(missing) == (404, "not_found")
        assert "state" not in mine.json()["error"]["details"]
        # the victim's workspace itself: 404 for the attacker's key, whatever the session's state
        theirs = await attacker.post(f"/v1/workspaces/{victim_ws}/messages", json=body)
        assert _error(theirs) == (404, "not_found")
        for to in ("12345678901@g.us", "123456789012345@lid"):
            r = await attacker.post(f"/v1/workspaces/{attacker_ws}/messages", json={**body, "to": to})
            assert _error(r) == (404, "not_found")
        # a read-only key of the victim's own workspace cannot send strict either
        reader = client_for(await make_key("read", victim_ws))
        assert (await reader.post(f"/v1/workspaces/{victim_ws}/messages", json=body)).status_code == 403
    finally:
        await victim.delete(f"/v1/workspaces/{victim_ws}/sessions/{sid}")


@pytest.mark.parametrize("phone", BAD_PHONES + BAD_TYPED_PHONES)
async def test_pairing_with_a_bad_phone_is_422_and_creates_nothing(make_key, client_for, unique_ws, phone) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    r = await client.post(f"/v1/workspaces/{unique_ws}/sessions",
                          json={"session_id": "pc", "login": "code", "phone": phone})
    assert _error(r) == (422, "validation_error"), (phone, r.text)
    if isinstance(phone, str) and len(phone) >= 4:
        assert phone.strip() not in r.text, r.text
    assert (await client.get(f"/v1/workspaces/{unique_ws}/sessions/pc")).status_code == 404
    assert (await client.get(f"/v1/workspaces/{unique_ws}/sessions")).json() == []


async def test_login_mode_cannot_be_smuggled(make_key, client_for, unique_ws) -> None:
    client = client_for(await make_key("workspace", unique_ws))
    path = f"/v1/workspaces/{unique_ws}/sessions"
    for body in ({"login": "code"}, {"login": "CODE", "phone": "15553440"}, {"login": "qr", "phone": "15553440"},
                 {"login": ["code"], "phone": "15553440"}, {"login": "code", "phone": "15553440", "code": "ABCD1234"},
                 {"login": "code", "phone": "15553440", "pairing_code": "ABCD1234"}):
        r = await client.post(path, json={"session_id": "pc", **body})
        assert _error(r) == (422, "validation_error"), (body, r.text)
        assert "ABCD1234" not in r.text


async def test_a_pairing_code_is_in_its_event_only(api, service, live_redis, make_key, client_for,
                                                   unique_ws) -> None:
    ws = unique_ws
    owner = client_for(await make_key("workspace", ws))
    reader = client_for(await make_key("read", ws))
    base = f"/v1/workspaces/{ws}/sessions"
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        created = await owner.post(base, json={"session_id": "pc", "login": "code", "phone": "15553441"})
        assert created.status_code == 201, created.text
        event = await events.wait_for(lambda e: e["type"] == "session.pairing_code")
    code = event["data"]["code"]
    try:
        answers = [await owner.get(f"{base}/pc"), await reader.get(f"{base}/pc"), await owner.get(base),
                   await owner.get(f"{base}/pc/qr"), await owner.get(f"{base}/pc/qr?format=png"),
                   await owner.post(base, json={"session_id": "pc", "login": "code", "phone": "15553441"}),
                   await owner.post(f"/v1/workspaces/{ws}/messages",
                                    json={"to": "15553442", "text": "x", "strict": True, "session_id": "pc"}),
                   await owner.get(f"/v1/workspaces/{ws}/sessions/pc/chats")]
        assert [a.status_code for a in answers][:4] == [200, 200, 200, 409]
        assert answers[6].status_code == 409 and answers[6].json()["error"]["code"] == "session_unavailable"
        for answer in answers:
            assert code not in answer.text and code.encode() not in answer.content, answer.request.url
        logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
        for path in (p for p in logs.rglob("*") if p.is_file()):
            assert code.encode() not in path.read_bytes(), path
        stream = keys.events(ws)
        async for name in live_redis.scan_iter(count=1000):
            if name == stream:
                continue
            kind = await live_redis.type(name)
            if kind == "string":
                value = await live_redis.get(name) or ""
            elif kind == "hash":
                value = str(await live_redis.hgetall(name))
            elif kind == "list":
                value = str(await live_redis.lrange(name, 0, -1))
            elif kind == "stream":
                value = str(await live_redis.xrange(name, count=10_000))
            else:
                continue
            assert code not in value, name
    finally:
        await owner.delete(f"{base}/pc")
