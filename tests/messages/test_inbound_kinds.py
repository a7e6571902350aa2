"""Issue 13, inbound on WhatsApp Web, on the real stack: the simulator's phone sends a linked session every
common kind, and the workspace's event stream gets each one typed (message.received with kind, text,
media/location/contacts/reply_to; message.reaction, message.revoked, message.edited with their targets).
Media goes page -> media store (eager policy) and comes back from GET /media/{id} byte for byte."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
from pydantic import TypeAdapter

from tests.events import EventCollector, collect_events
from tests.flows import link_session, stream_url
from wa_ray.serve_app.event_models import MessageReceivedData

WS = "in-kinds"
SESSION_NUMBER = "15552310"
PHONE = "15552311"
WS_CAPPED = "in-kinds-capped"
CAPPED_NUMBER = "15552320"
CAPPED_PHONE = "15552321"

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PDF = b"%PDF-1.4\n% wa-ray invoice 42\n" + b"x" * 600_000 + b"\n%%EOF\n"  # more than one page chunk (512 KiB)
OGG = b"OggS" + bytes(range(256)) * 8
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x01" * 300
VCARD_ADA = "BEGIN:VCARD\nVERSION:3.0\nFN:Ada Lovelace\nTEL;type=CELL;waid=15550777:+1 555 50777\nEND:VCARD"
VCARD_BOB = "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nTEL:+1 555 0000\nEND:VCARD"


def wa_in(phone: str, msg_id: str) -> str:
    """The WhatsApp id the session's page gives a message the phone sent it."""
    return f"false_{phone}@c.us_{msg_id}"


async def phone_send(phone_api: httpx.AsyncClient, phone: str, path: str, body: dict[str, Any]) -> str:
    response = await phone_api.post(f"/_phone/{phone}/{path}", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def received(events: EventCollector, wa_id: str) -> dict[str, Any]:
    event = await events.wait_for(lambda e: e["type"] == "message.received" and e["data"]["wa_message_id"] == wa_id)
    TypeAdapter(MessageReceivedData).validate_python(event["data"])  # the OpenAPI schema of its kind
    return event["data"]


async def media_bytes(api: httpx.AsyncClient, ws: str, media_id: str) -> bytes:
    response = await api.get(f"/v1/workspaces/{ws}/media/{media_id}")
    assert response.status_code == 200, response.text
    return response.content


async def assert_stored(api: httpx.AsyncClient, data: dict[str, Any], content: bytes, mimetype: str) -> None:
    media = data["media"]
    assert media["status"] == "stored", media
    assert (media["mimetype"], media["size"], media["sha256"]) == (
        mimetype, len(content), hashlib.sha256(content).hexdigest())
    assert await media_bytes(api, WS, media["media_id"]) == content


async def test_every_kind_arrives_typed(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "k1", SESSION_NUMBER)
        # our own message, for the reply and the reaction to point at
        sent = await api.post(f"/v1/workspaces/{WS}/messages", json={"session_id": "k1", "to": PHONE, "text": "hi"})
        assert sent.status_code == 202, sent.text
        ours = sent.json()["message_id"]
        ours_wa = (await events.wait_for(lambda e: e["type"] == "message.sent"
                                         and e["data"]["message_id"] == ours))["data"]["wa_message_id"]
        ours_key = ours_wa.rsplit("_", 1)[1]

        to = {"to": SESSION_NUMBER}
        image = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "image", "mimetype": "image/png",
                                                             "data_b64": base64.b64encode(PNG).decode(),
                                                             "caption": "a picture"})
        data = await received(events, wa_in(PHONE, image))
        assert (data["kind"], data["type"], data["text"], data["from"]) == ("image", "image", "a picture", PHONE)
        await assert_stored(api, data, PNG, "image/png")

        doc = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "document", "mimetype": "application/pdf",
                                                           "data_b64": base64.b64encode(PDF).decode(),
                                                           "filename": "invoice-42.pdf", "caption": "your invoice"})
        data = await received(events, wa_in(PHONE, doc))
        assert (data["kind"], data["text"], data["media"]["filename"]) == ("document", "your invoice", "invoice-42.pdf")
        await assert_stored(api, data, PDF, "application/pdf")

        voice = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "voice", "mimetype": "audio/ogg; codecs=opus",
                                                             "data_b64": base64.b64encode(OGG).decode()})
        data = await received(events, wa_in(PHONE, voice))
        assert (data["kind"], data["type"], data["text"]) == ("voice", "ptt", None)
        await assert_stored(api, data, OGG, "audio/ogg; codecs=opus")

        sticker = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "sticker", "mimetype": "image/webp",
                                                               "data_b64": base64.b64encode(WEBP).decode()})
        data = await received(events, wa_in(PHONE, sticker))
        assert data["kind"] == "sticker"
        await assert_stored(api, data, WEBP, "image/webp")

        place = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "location", "latitude": 52.52,
                                                             "longitude": 13.405, "name": "Brandenburger Tor",
                                                             "address": "Pariser Platz, Berlin"})
        data = await received(events, wa_in(PHONE, place))
        assert (data["kind"], data["text"]) == ("location", None)
        assert data["location"] == {"latitude": 52.52, "longitude": 13.405, "name": "Brandenburger Tor",
                                    "address": "Pariser Platz, Berlin"}

        cards = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "contacts", "vcards": [VCARD_ADA, VCARD_BOB]})
        data = await received(events, wa_in(PHONE, cards))
        assert (data["kind"], data["type"]) == ("contacts", "multi_vcard")
        assert data["contacts"] == [
            {"name": {"formatted_name": "Ada Lovelace"}, "phones": [{"phone": "+1 555 50777", "wa_id": "15550777"}],
             "vcard": VCARD_ADA},
            {"name": {"formatted_name": "Bob"}, "phones": [{"phone": "+1 555 0000"}], "vcard": VCARD_BOB},
        ]

        # a reply to our message names it by our id; a reply to the phone's own message has no id of ours
        reply = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "location", "latitude": 1.5,
                                                             "longitude": 2.5, "quoted_id": ours_key})
        data = await received(events, wa_in(PHONE, reply))
        assert data["reply_to"] == {"wa_message_id": ours_wa, "message_id": ours}
        reply2 = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "contacts", "vcards": [VCARD_BOB],
                                                              "quoted_id": place})
        data = await received(events, wa_in(PHONE, reply2))
        assert data["reply_to"] == {"wa_message_id": wa_in(PHONE, place), "message_id": None}
        assert data["type"] == "vcard" and data["contacts"][0]["name"]["formatted_name"] == "Bob"

        # a reaction on our message, then its removal
        react = await phone_send(phone_api, PHONE, "reactions", {**to, "target_id": ours_key, "emoji": "👍"})
        event = await events.wait_for(lambda e: e["type"] == "message.reaction"
                                      and e["data"]["wa_message_id"].endswith(react))
        assert event["data"] == {"wa_message_id": wa_in(PHONE, react), "target_wa_message_id": ours_wa,
                                 "target_message_id": ours, "emoji": "👍", "from": PHONE, "provider": "webjs"}
        unreact = await phone_send(phone_api, PHONE, "reactions", {**to, "target_id": ours_key, "emoji": ""})
        event = await events.wait_for(lambda e: e["type"] == "message.reaction"
                                      and e["data"]["wa_message_id"].endswith(unreact))
        assert (event["data"]["emoji"], event["data"]["target_message_id"]) == ("", ours)

        # a change right behind its message (still downloading) is published after it, never before
        quick = await phone_send(phone_api, PHONE, "kinds", {**to, "kind": "document", "mimetype": "application/pdf",
                                                             "data_b64": base64.b64encode(PDF).decode()})
        await phone_send(phone_api, PHONE, "reactions", {**to, "target_id": quick, "emoji": "😮"})
        event = await events.wait_for(lambda e: e["type"] == "message.reaction"
                                      and e["data"]["target_wa_message_id"] == wa_in(PHONE, quick))
        order = [e["data"]["wa_message_id"] for e in events.events if e["type"] in ("message.received",
                                                                                      "message.reaction")]
        assert order.index(wa_in(PHONE, quick)) < order.index(event["data"]["wa_message_id"])

        # the phone deletes its picture for everyone, and edits a text
        await phone_send(phone_api, PHONE, "revoke", {**to, "target_id": image})
        event = await events.wait_for(lambda e: e["type"] == "message.revoked")
        assert event["data"] == {"wa_message_id": wa_in(PHONE, image), "message_id": None, "from": PHONE,
                                 "provider": "webjs"}
        draft = await phone_send(phone_api, PHONE, "messages", {**to, "body": "see you at 5"})
        data = await received(events, wa_in(PHONE, draft))
        assert (data["kind"], data["text"]) == ("text", "see you at 5")
        await phone_send(phone_api, PHONE, "edit", {**to, "target_id": draft, "body": "see you at 6"})
        event = await events.wait_for(lambda e: e["type"] == "message.edited")
        assert event["data"] == {"wa_message_id": wa_in(PHONE, draft), "message_id": None, "text": "see you at 6",
                                 "from": PHONE, "provider": "webjs"}

        # in a group: the chat is the group, the author the member, a reply names the member's message
        group = {**to, "group_id": "120363000000002310"}
        hello = await phone_send(phone_api, PHONE, "messages", {**group, "body": "hello group"})
        hello_wa = f"false_120363000000002310@g.us_{hello}_{PHONE}@c.us"
        await received(events, hello_wa)
        pic = await phone_send(phone_api, PHONE, "kinds", {**group, "kind": "image", "mimetype": "image/png",
                                                           "data_b64": base64.b64encode(PNG).decode(),
                                                           "quoted_id": hello})
        data = await received(events, f"false_120363000000002310@g.us_{pic}_{PHONE}@c.us")
        assert (data["chat_id"], data["author"], data["kind"]) == ("120363000000002310@g.us", f"{PHONE}@c.us", "image")
        assert data["reply_to"] == {"wa_message_id": hello_wa, "message_id": None}
        await assert_stored(api, data, PNG, "image/png")
        group_react = await phone_send(phone_api, PHONE, "reactions", {**group, "target_id": hello, "emoji": "🙏"})
        event = await events.wait_for(lambda e: e["type"] == "message.reaction"
                                      and group_react in e["data"]["wa_message_id"])
        assert (event["data"]["target_wa_message_id"], event["data"]["from"]) == (hello_wa, PHONE)

        # each arrived once
        ids = [e["data"]["wa_message_id"] for e in events.of_type("message.received")]
        assert len(ids) == len(set(ids))
        assert len(events.of_type("message.revoked")) == 1 and len(events.of_type("message.edited")) == 1


async def test_media_over_the_cap_is_described_not_stored(api: httpx.AsyncClient, phone_api: httpx.AsyncClient,
                                                          service) -> None:
    put = await api.put(f"/v1/workspaces/{WS_CAPPED}/media-policy", json={"download": "eager", "max_bytes": 1000})
    assert put.status_code == 200, put.text
    async with collect_events(await stream_url(api, service.base_url, WS_CAPPED)) as events:
        await link_session(api, phone_api, events, WS_CAPPED, "k2", CAPPED_NUMBER)
        doc = await phone_send(phone_api, CAPPED_PHONE, "kinds", {
            "to": CAPPED_NUMBER, "kind": "document", "mimetype": "application/pdf", "filename": "big.pdf",
            "data_b64": base64.b64encode(PDF).decode()})
        data = await received(events, wa_in(CAPPED_PHONE, doc))
        assert data["media"] == {"media_id": None, "mimetype": "application/pdf", "filename": "big.pdf",
                                 "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest(), "status": "too_large"}
        small = await phone_send(phone_api, CAPPED_PHONE, "kinds", {
            "to": CAPPED_NUMBER, "kind": "image", "mimetype": "image/png", "data_b64": base64.b64encode(PNG).decode()})
        data = await received(events, wa_in(CAPPED_PHONE, small))
        assert data["media"]["status"] == "stored" and data["text"] is None
        response = await api.get(f"/v1/workspaces/{WS_CAPPED}/media/{data['media']['media_id']}")
        assert response.status_code == 200 and response.content == PNG
