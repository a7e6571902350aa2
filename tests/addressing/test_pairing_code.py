"""Issue 14, pairing-code login, through the public API against the simulator: a session created with
`login: "code"` publishes session.pairing_code (never session.qr), the simulator's phone enters the code
and the session connects; a restart restores it without a code, and logout unlinks it as with QR."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from tests.events import collect_events
from tests.flows import stream_url, wait_state

WS = "addr-pairing"
PHONE = "15553430"


async def test_pairing_code_login_restore_and_logout(api: httpx.AsyncClient, phone_api: httpx.AsyncClient,
                                                     service) -> None:
    base = f"/v1/workspaces/{WS}/sessions"
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        created = await api.post(base, json={"session_id": "pc1", "login": "code", "phone": PHONE})
        assert created.status_code == 201, created.text
        assert (created.json()["login"], created.json()["phone"]) == ("code", PHONE)
        got = await events.wait_for(lambda e: e["type"] == "session.pairing_code" and e["session_id"] == "pc1")
        code = got["data"]["code"]
        assert re.fullmatch(r"[A-Z0-9]{8}", code) and got["data"]["expires_in"] == 180 and got["data"]["seq"] == 1
        assert not [e for e in events.of_type("session.qr") if e["session_id"] == "pc1"]

        record = await wait_state(api, WS, "pc1", "qr_required")
        assert code not in str(record)
        qr = await api.get(f"{base}/pc1/qr")
        assert qr.status_code == 409 and qr.json()["error"]["code"] == "pairing_code_login"
        assert code not in qr.text

        # another number cannot use it; the right phone links with it
        assert (await phone_api.post("/_phone/15553439/pairing-code", json={"code": code})).status_code == 404
        entered = await phone_api.post(f"/_phone/{PHONE}/pairing-code", json={"code": code})
        assert entered.status_code == 200, entered.text
        await events.wait_for(lambda e: e["type"] == "session.ready" and e["session_id"] == "pc1")
        connected = await wait_state(api, WS, "pc1", "connected")
        assert connected["me"] == PHONE

        # restore: the saved link comes back without a code
        codes_before = len(events.of_type("session.pairing_code"))
        ready_before = len([e for e in events.of_type("session.ready") if e["session_id"] == "pc1"])
        restarted = await api.post(f"{base}/pc1/restart")
        assert restarted.status_code == 200, restarted.text
        await events.wait_for(lambda e: len([x for x in events.of_type("session.ready")
                                             if x["session_id"] == "pc1"]) > ready_before)
        await wait_state(api, WS, "pc1", "connected")
        assert len(events.of_type("session.pairing_code")) == codes_before

        # a message goes out from the code-linked session like from any other
        sent = await api.post(f"/v1/workspaces/{WS}/messages",
                              json={"session_id": "pc1", "to": "15553431", "text": "linked by code", "strict": True})
        assert sent.status_code == 202, sent.text
        await events.wait_for(lambda e: e["type"] == "message.sent"
                              and e["data"]["message_id"] == sent.json()["message_id"])

        logout = await api.post(f"{base}/pc1/logout")
        assert logout.status_code == 200, logout.text
        await wait_state(api, WS, "pc1", "logged_out")
        # the phone learns of the unlink from the page, after our state is written: it goes offline soon after
        deadline = time.monotonic() + 10
        while [d for d in (await phone_api.get(f"/_phone/{PHONE}/devices")).json()["devices"] if d.get("online")]:
            assert time.monotonic() < deadline, "the phone still shows the logged-out device online"
            await asyncio.sleep(0.1)
        # a strict send to it now is refused at once, with the state
        refused = await api.post(f"/v1/workspaces/{WS}/messages",
                                 json={"session_id": "pc1", "to": "15553431", "text": "x", "strict": True})
        assert refused.status_code == 409 and refused.json()["error"]["details"]["state"] == "logged_out"
        await api.delete(f"{base}/pc1")


async def test_create_session_login_validation(api: httpx.AsyncClient, service) -> None:
    base = "/v1/workspaces/addr-pairing-bad/sessions"
    for body in ({"login": "code"}, {"login": "code", "phone": "+15553430"}, {"login": "code", "phone": "0155"},
                 {"login": "qr", "phone": "15553430"}, {"login": "sms", "phone": "15553430"},
                 {"login": "code", "phone": 15553430}):
        response = await api.post(base, json={"session_id": "bad", **body})
        assert response.status_code == 422, (body, response.text)
    assert (await api.get(f"{base}/bad")).status_code == 404
