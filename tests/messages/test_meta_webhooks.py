"""GET|POST /webhooks/meta: the handshake, X-Hub-Signature-256 on the raw body, and idempotent handling
of Meta's duplicated and out-of-order deliveries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx
import orjson

from tests.events import collect_events
from tests.flows import stream_url
from tests.messages.helpers import APP_SECRET, VERIFY_TOKEN, cloud_config, eventually, put_provider, send, wait_status

WS, PNID, TOKEN = "msg-meta-hooks", "700201", "tok-meta-hooks"


async def test_verify_handshake(service, meta_app) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as raw:
        ok = await raw.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                                     "hub.verify_token": VERIFY_TOKEN})
        assert (ok.status_code, ok.text) == (200, "1158201444")
        wrong = await raw.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.challenge": "1",
                                                        "hub.verify_token": "not-it"})
        assert wrong.status_code == 403
        assert (await raw.get("/webhooks/meta", params={"hub.challenge": "1"})).status_code == 403


async def test_signature_is_checked_on_the_raw_body(api, service, meta_app) -> None:
    await put_provider(api, WS, priority="meta", cloud=cloud_config(meta_app, PNID, TOKEN))
    body = orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": PNID}, "messages": [
            {"from": "15552310001", "id": "wamid.forged", "timestamp": "1", "type": "text", "text": {"body": "x"}}]}}]}]})
    good = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(base_url=service.base_url) as raw:
        post = lambda content, sig: raw.post("/webhooks/meta", content=content,
                                             headers={"X-Hub-Signature-256": sig} if sig else {})
        assert (await post(body, None)).status_code == 403
        assert (await post(body, "sha256=" + "0" * 64)).status_code == 403
        assert (await post(body + b" ", good)).status_code == 403  # same JSON, other bytes
        assert (await post(b"not json", good)).status_code == 403
        stranger = body.replace(PNID.encode(), b"999999")
        sig = "sha256=" + hmac.new(APP_SECRET.encode(), stranger, hashlib.sha256).hexdigest()
        assert (await post(stranger, sig)).status_code == 403  # a number no workspace configured
        assert (await post(body, good)).status_code == 200


async def test_duplicated_and_reordered_webhooks_count_once(api, service, meta_app) -> None:
    sim = meta_app
    sim.control.register_phone_number(PNID, TOKEN)
    await put_provider(api, WS, priority="meta", cloud=cloud_config(sim, PNID, TOKEN))
    sim.control.configure_webhook(duplicates=True, out_of_order=True)
    try:
        async with collect_events(await stream_url(api, service.base_url, WS)) as events:
            wamid = sim.control.inbound("15552310002", PNID, "ol\u00e1 \u2713 https://example.com/a")
            got = await events.wait_for(lambda e: e["type"] == "message.received"
                                        and e["data"]["wa_message_id"] == wamid)
            assert got["data"]["text"] == "ol\u00e1 \u2713 https://example.com/a"  # verified over Meta's escaping
            sent = await send(api, WS, "15552310002", "reply in the window")
            final = await wait_status(api, WS, sent["message_id"], {"read"})
            await events.wait_for(lambda e: e["type"] == "message.ack" and e["data"]["status"] == "read")
            # out of order means `read` came first; wait until sent, delivered and read have each come twice
            await eventually(lambda: _delivered(sim, final["wa_message_id"], 6))
            await asyncio.sleep(0.3)
        received = [e for e in events.of_type("message.received") if e["data"]["wa_message_id"] == wamid]
        acks = [(e["data"]["status"]) for e in events.of_type("message.ack")
                if e["data"]["message_id"] == sent["message_id"]]
        assert len(received) == 1
        assert len(acks) == len(set(acks)) and "read" in acks  # no ack twice; `read` first makes `delivered` moot
        assert [h["status"] for h in final["history"]][-1] == "read"
    finally:
        sim.control.configure_webhook(duplicates=False, out_of_order=False)


async def _delivered(sim, wamid: str, count: int) -> bool:
    return len([d for d in sim.control.deliveries(wamid) if d["outcome"] == "delivered"]) >= count
