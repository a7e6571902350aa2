"""Issue 14, @lid addressing of LIVE messages, through the public API against the simulator: a phone writes to
a linked session from its @lid (the simulator's `as_lid`), once telling the page the phone behind the lid and
once not; in a 1:1 chat and in a group. message.received carries the phone where the page knows it and the
lid kept opaque otherwise (never digits made from the lid), and a reply addressed to the lid reaches the
phone behind it over WhatsApp Web."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter

from tests.events import EventCollector, collect_events
from tests.flows import link_session, poll, stream_url
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.simulator.wa_web.state import lid_for
from wa_ray.storage.messages import WEBJS

WS = "addr-live-lid"
SID = "ll1"
SESSION_NUMBER = "15553470"
KNOWN = "15553471"  # writes from its lid and lets the page know its phone
UNKNOWN = "15553472"  # writes from its lid; the page never learns its phone
GROUP = "120363099900034700@g.us"
ID_FIELDS = ("chat_id", "from_id", "author", "wa_message_id")  # where a lid may appear, as an id


async def phone_writes(phone_api: httpx.AsyncClient, phone: str, body: dict[str, Any]) -> str:
    wrote = await phone_api.post(f"/_phone/{phone}/messages", json=body)
    assert wrote.status_code == 200, wrote.text
    return str(wrote.json()["id"])


async def received(events: EventCollector, msg_id: str) -> dict[str, Any]:
    """The message.received of the phone's message `msg_id` (its wa id ends with the stanza id, or holds it
    before a group author), checked against the event's OpenAPI model."""
    event = await events.wait_for(lambda e: e["type"] == "message.received"
                                  and f"_{msg_id}" in e["data"]["wa_message_id"])
    data: dict[str, Any] = event["data"]
    TypeAdapter(MessageReceivedData).validate_python(data)
    return data


def assert_no_number_from_lid(data: dict[str, Any], lid: str) -> None:
    """The lid's digits appear only inside ids, never as a phone number anywhere in the payload."""
    digits = lid.split("@", 1)[0]
    assert data["from"] is None
    for key, value in data.items():
        if key not in ID_FIELDS:
            assert digits not in repr(value), (key, value)


async def inbox_entry(phone_api: httpx.AsyncClient, phone: str, body: str, timeout: float = 20.0) -> dict[str, Any]:
    async def received_once() -> dict[str, Any] | None:
        got = (await phone_api.get(f"/_phone/{phone}/inbox")).json()["messages"]
        hits = [m for m in got if m["body"] == body]
        assert len(hits) <= 1, hits
        return hits[0] if hits else None
    return await poll(received_once, f"{body!r} never reached {phone}", timeout)


async def reply_to(api: httpx.AsyncClient, events: EventCollector, to: str, text: str) -> dict[str, Any]:
    sent = await api.post(f"/v1/workspaces/{WS}/messages", json={"session_id": SID, "to": to, "text": text})
    assert sent.status_code == 202, sent.text
    assert sent.json()["provider"] == WEBJS
    mid = sent.json()["message_id"]
    done = await events.wait_for(lambda e: e["type"] in ("message.sent", "message.failed")
                                 and e["data"]["message_id"] == mid)
    assert done["type"] == "message.sent", done
    return done["data"]


async def test_live_lid_inbound_resolved_or_opaque_and_replied(api: httpx.AsyncClient, phone_api: httpx.AsyncClient,
                                                               service) -> None:
    known_lid, unknown_lid = lid_for(KNOWN), lid_for(UNKNOWN)
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, SID, SESSION_NUMBER)

        # 1:1 from a lid whose phone the page knows: from = that phone, from_id = the lid, the chat is the lid's
        mid = await phone_writes(phone_api, KNOWN, {"to": SESSION_NUMBER, "body": "known lid here", "as_lid": True})
        data = await received(events, mid)
        assert data["text"] == "known lid here"
        assert (data["chat_id"], data["from"], data["from_id"], data["author"], data["is_group"]) == (
            known_lid, KNOWN, known_lid, None, False)
        assert data["to"] == SESSION_NUMBER

        # 1:1 from a lid whose phone the page does not know: from = null, from_id = the lid, no made-up number
        mid = await phone_writes(phone_api, UNKNOWN, {"to": SESSION_NUMBER, "body": "unknown lid here",
                                                      "as_lid": True, "pn_known": False})
        data = await received(events, mid)
        assert (data["chat_id"], data["from"], data["from_id"], data["author"], data["is_group"]) == (
            unknown_lid, None, unknown_lid, None, False)
        assert_no_number_from_lid(data, unknown_lid)

        # in a group: the author is the phone id where the page knows it, else the lid
        mid = await phone_writes(phone_api, KNOWN, {"to": SESSION_NUMBER, "body": "known lid in the group",
                                                    "group_id": GROUP, "as_lid": True})
        data = await received(events, mid)
        assert (data["chat_id"], data["from"], data["from_id"], data["author"], data["is_group"]) == (
            GROUP, KNOWN, known_lid, f"{KNOWN}@c.us", True)
        mid = await phone_writes(phone_api, UNKNOWN, {"to": SESSION_NUMBER, "body": "unknown lid in the group",
                                                      "group_id": GROUP, "as_lid": True, "pn_known": False})
        data = await received(events, mid)
        assert (data["chat_id"], data["from"], data["from_id"], data["author"], data["is_group"]) == (
            GROUP, None, unknown_lid, unknown_lid, True)
        assert_no_number_from_lid(data, unknown_lid)

        # replies addressed to each lid leave over WhatsApp Web from this session and reach the phone behind it
        for phone, lid in ((KNOWN, known_lid), (UNKNOWN, unknown_lid)):
            text = f"reply to {phone} by lid"
            sent = await reply_to(api, events, lid, text)
            assert sent["wa_message_id"].startswith(f"true_{lid}_"), sent
            got = await inbox_entry(phone_api, phone, text)
            assert (got["from"], got["to"]) == (SESSION_NUMBER, phone)
            assert sent["wa_message_id"].endswith(f"_{got['id']}")
