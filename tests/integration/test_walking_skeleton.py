"""One message end to end on real Ray, Serve, Chromium and Redis, against the WhatsApp Web simulator.

API -> SessionSupervisor -> SessionActor + BrowserHost (Chromium context) -> simulator page -> QR on SSE ->
phone scans -> connected -> POST /messages -> page sends -> phone receives exactly once -> ack on SSE ->
signed webhook verified by a local receiver.
"""

from __future__ import annotations

import orjson

from wa_ray.actors.webhook_signing import verify
from tests.events import collect_events
from tests.receiver import running_receiver

WS = "acme"
PHONE = "15550001"
RECIPIENT = "15550002"
WEBHOOK_SECRET = "whsec-0123456789abcdef"


async def test_one_message_end_to_end(api, phone_api, service) -> None:
    token = (await api.post(f"/v1/workspaces/{WS}/stream-tokens")).json()["token"]
    url = f"{service.base_url}/v1/workspaces/{WS}/events?token={token}"
    with running_receiver() as receiver:
        assert (await api.put(f"/v1/workspaces/{WS}/webhook",
                              json={"url": receiver.url, "secret": WEBHOOK_SECRET})).status_code == 204
        async with collect_events(url) as events:
            assert events.headers.get("x-accel-buffering") == "no"

            # 1. create: the supervisor starts a SessionActor whose page opens on the simulator
            created = await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": "main"})
            assert created.status_code == 201, created.text
            assert created.json()["session_id"] == "main"

            # 2. the page shows a QR; the actor publishes it; the browser-side stream receives it
            qr_event = await events.wait_for(lambda e: e["type"] == "session.qr")
            qr = qr_event["data"]["qr"]
            assert len(qr.split(",")) == 5 and qr_event["session_id"] == "main"
            raw = await api.get(f"/v1/workspaces/{WS}/sessions/main/qr")
            assert raw.json()["qr"] == qr
            png = await api.get(f"/v1/workspaces/{WS}/sessions/main/qr?format=png")
            assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"

            # 3. the phone scans it; the session reaches connected; session.ready arrives
            scan = await phone_api.post(f"/_phone/{PHONE}/scan", json={"qr": qr})
            assert scan.status_code == 200, scan.text
            ready = await events.wait_for(lambda e: e["type"] == "session.ready")
            assert ready["data"]["me"]["number"] == PHONE
            session = (await api.get(f"/v1/workspaces/{WS}/sessions/main")).json()
            assert session["state"] == "connected" and session["me"] == PHONE

            # 4. send: 202 with an id; the phone receives exactly that text; acks and a signed webhook follow
            text = "hello from the walking skeleton"
            accepted = await api.post(f"/v1/workspaces/{WS}/messages",
                                      json={"session_id": "main", "to": RECIPIENT, "text": text})
            assert accepted.status_code == 202, accepted.text
            message_id = accepted.json()["message_id"]
            assert accepted.json()["status"] == "queued"

            await events.wait_for(lambda e: e["type"] == "message.sent" and e["data"]["message_id"] == message_id)
            ack = await events.wait_for(
                lambda e: e["type"] == "message.ack" and e["data"]["message_id"] == message_id
                and e["data"]["status"] == "delivered")
            inbox = (await phone_api.get(f"/_phone/{RECIPIENT}/inbox")).json()["messages"]
            assert [m["body"] for m in inbox if m["body"] == text] == [text]
            assert inbox[-1]["from"].startswith(PHONE)

            status = (await api.get(f"/v1/workspaces/{WS}/messages/{message_id}")).json()
            assert [h["status"] for h in status["history"]][:3] == ["queued", "sending", "sent"]
            assert "delivered" in [h["status"] for h in status["history"]]

            delivery = await receiver.wait_for(lambda d: d.headers.get("x-event-id") == ack["id"])
            assert delivery.headers["x-event-type"] == "message.ack"
            assert delivery.headers["x-workspace-id"] == WS
            assert verify(WEBHOOK_SECRET, delivery.headers["x-timestamp"], delivery.body,
                          delivery.headers["x-signature"])
            assert not verify(WEBHOOK_SECRET, delivery.headers["x-timestamp"], delivery.body + b" ",
                              delivery.headers["x-signature"])
            assert orjson.loads(delivery.body)["data"]["message_id"] == message_id

            # SSE ids are the stream ids: strictly increasing, none repeated
            assert events.ids == sorted(set(events.ids), key=lambda i: tuple(map(int, i.split("-"))))


async def test_unsigned_and_tampered_requests_are_refused(service) -> None:
    import httpx

    from wa_ray.signing import signed_headers

    async with httpx.AsyncClient(base_url=service.base_url) as raw:
        missing = await raw.post(f"/v1/workspaces/{WS}/messages", json={"to": RECIPIENT, "text": "x"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
        body = b'{"to": "15550002", "text": "x"}'
        headers = signed_headers("test-admin", "wrong-secret", "POST", f"/v1/workspaces/{WS}/messages", body)
        wrong = await raw.post(f"/v1/workspaces/{WS}/messages", content=body, headers=headers)
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "bad_signature"
