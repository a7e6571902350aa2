"""Issue 14, groups and new addressing, through the public API against the simulator: a send to a group id
reaches the simulator's group from the session's number, an inbound group message names its author, a
group or @lid recipient never goes to the Cloud API (at accept, and in the failover), and a phone-number
send is accepted and fingerprinted exactly as before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from tests.events import collect_events
from tests.flows import link_session, poll, stream_url
from tests.messages.helpers import APP_SECRET, VERIFY_TOKEN
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.storage.messages import META, WEBJS, MessageStore, OutboundMessage, may_move

WS = "addr-groups"
SESSION_NUMBER = "15553410"
PHONE = "15553411"
GROUP = "120363099900011122@g.us"
LID = "123456789012345@lid"
DEAD_GRAPH = "http://127.0.0.1:9"  # a Cloud API config that is never called: accept decides without it


def cloud_block(pnid: str) -> dict[str, Any]:
    return {"phone_number_id": pnid, "access_token": f"tok-{pnid}", "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN, "graph_base_url": DEAD_GRAPH}


async def group_log(phone_api: httpx.AsyncClient, gid: str, body: str, timeout: float = 20.0) -> dict[str, Any]:
    async def logged() -> dict[str, Any] | None:
        got = (await phone_api.get(f"/_sim/groups/{gid}")).json()["messages"]
        return next((m for m in got if m["body"] == body), None)
    return await poll(logged, f"{body!r} never reached group {gid}", timeout)


async def test_group_send_and_group_inbound(api: httpx.AsyncClient, phone_api: httpx.AsyncClient, service) -> None:
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "g1", SESSION_NUMBER)
        # the Cloud API is this workspace's first choice and looks healthy: a group still goes by WhatsApp Web
        put = await api.put(f"/v1/workspaces/{WS}/provider", json={"priority": "meta", "cloud": cloud_block("740001")})
        assert put.status_code == 200, put.text
        sent = await api.post(f"/v1/workspaces/{WS}/messages", json={"to": GROUP, "text": "hello group"})
        assert sent.status_code == 202, sent.text
        assert sent.json()["provider"] == WEBJS
        mid = sent.json()["message_id"]
        done = await events.wait_for(lambda e: e["type"] == "message.sent" and e["data"]["message_id"] == mid)
        wa_id = done["data"]["wa_message_id"]
        assert wa_id.startswith(f"true_{GROUP}_") and wa_id.endswith(f"_{SESSION_NUMBER}@c.us"), wa_id
        logged = await group_log(phone_api, GROUP, "hello group")
        assert logged["from"] == SESSION_NUMBER
        record = (await api.get(f"/v1/workspaces/{WS}/messages/{mid}")).json()
        assert record["to"] == GROUP and record["provider"] == WEBJS

        # a phone number still goes where the workspace's priority says (the Cloud API here)
        phone_send = await api.post(f"/v1/workspaces/{WS}/messages", json={"to": PHONE, "text": "to a number"})
        assert phone_send.status_code == 202 and phone_send.json()["provider"] == META

        wrote = await phone_api.post(f"/_phone/{PHONE}/messages", json={"to": SESSION_NUMBER, "body": "from the group",
                                                                       "group_id": GROUP})
        assert wrote.status_code == 200, wrote.text
        got = await events.wait_for(lambda e: e["type"] == "message.received"
                                    and e["data"].get("text") == "from the group")
        data = got["data"]
        TypeAdapter(MessageReceivedData).validate_python(data)
        assert data["chat_id"] == GROUP and data["is_group"] is True
        assert data["from"] == PHONE  # the member who wrote, never the group id's user part
        assert data["author"] == f"{PHONE}@c.us" and data["from_id"] == f"{PHONE}@c.us"
        assert data["to"] == SESSION_NUMBER


@pytest.mark.parametrize("to", [GROUP, LID])
async def test_cloud_api_pinned_refuses_a_web_only_recipient(api: httpx.AsyncClient, service, to: str) -> None:
    ws = "addr-pinned"
    put = await api.put(f"/v1/workspaces/{ws}/provider",
                        json={"priority": "meta", "override": "meta", "cloud": cloud_block("740002")})
    assert put.status_code == 200, put.text
    refused = await api.post(f"/v1/workspaces/{ws}/messages", json={"to": to, "text": "hi"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "recipient_not_supported"
    assert to not in refused.text
    # no session at all, Cloud API configured and not pinned: the Cloud API would be the only choice
    ws2 = "addr-cloud-only"
    assert (await api.put(f"/v1/workspaces/{ws2}/provider",
                          json={"priority": "webjs", "cloud": cloud_block("740003")})).status_code == 200
    only = await api.post(f"/v1/workspaces/{ws2}/messages", json={"to": to, "text": "hi"})
    assert only.status_code == 422 and only.json()["error"]["code"] == "recipient_not_supported"
    template = await api.post(f"/v1/workspaces/{ws2}/messages", json={
        "to": to, "type": "template", "name": "hello_world", "language": "en_US"})
    assert template.status_code == 422 and template.json()["error"]["code"] == "recipient_not_supported"
    # the same workspace still takes a phone number for the Cloud API
    ok = await api.post(f"/v1/workspaces/{ws2}/messages", json={"to": PHONE, "text": "hi"})
    assert ok.status_code == 202 and ok.json()["provider"] == META


async def test_failover_never_moves_a_web_only_recipient_to_the_cloud_api(redis) -> None:
    store = MessageStore(redis)
    for to, movable in ((GROUP, False), (LID, False), (PHONE, True)):
        msg = OutboundMessage(f"msg_{abs(hash(to)) % 10**8:08d}", "ws-move", "s1", to, "t", "normal", WEBJS)
        assert (await store.accept(msg, None)).created
        record = await store.record(msg.workspace_id, msg.message_id)
        assert may_move(record, META) is movable
        assert await store.reroute(msg.message_id, record, META, "", "session down") is movable
        assert (await store.record(msg.workspace_id, msg.message_id))["provider"] == (META if movable else WEBJS)
    # WhatsApp Web may still take any of them over from the Cloud API side
    assert may_move({"to": GROUP}, WEBJS)


async def test_phone_number_record_and_fingerprint_unchanged(redis) -> None:
    store = MessageStore(redis)
    msg = OutboundMessage("msg_fp000001", "ws-fp", "s1", PHONE, "hello", "normal", WEBJS)
    assert (await store.accept(msg, "key-1")).created
    record = await store.record(msg.workspace_id, msg.message_id)
    assert "strict" not in record and record["to"] == PHONE
    again = await store.accept(OutboundMessage("msg_fp000002", "ws-fp", "s1", PHONE, "hello", "normal", WEBJS), "key-1")
    assert (again.created, again.same_request, again.message_id) == (False, True, "msg_fp000001")


LID_SESSION_NUMBER = "15553450"


async def test_lid_senders_resolved_where_the_page_knows_the_phone(api: httpx.AsyncClient,
                                                                   phone_api: httpx.AsyncClient, service) -> None:
    """The seeded history holds one 1:1 chat with a @lid whose phone the page knows and one whose phone it
    does not, and groups with @lid members; the session's own page serializes them (the bridge asks
    WAWebApiContact.getPhoneNumber) and the listing types them as message.received payloads."""
    ws = "addr-lid"
    seeded = await phone_api.post(f"/_phone/{LID_SESSION_NUMBER}/history", json={
        "chats": 6, "messages_per_chat": 6, "groups": 2, "contacts": 4, "lid_contacts": 1, "lid_unknown": 1,
        "days": 5, "seed": 14})
    assert seeded.status_code == 200, seeded.text
    lid_chats = [c for c in seeded.json()["chats"] if c.endswith("@lid")]
    group_chats = [c for c in seeded.json()["chats"] if c.endswith("@g.us")]
    assert len(lid_chats) == 2 and len(group_chats) == 2, seeded.json()
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "l1", LID_SESSION_NUMBER)
    senders: dict[str, set[Any]] = {}
    for chat in lid_chats:
        listed = await api.get(f"/v1/workspaces/{ws}/sessions/l1/chats/{chat}/messages", params={"limit": 50})
        assert listed.status_code == 200, listed.text
        theirs = [m for m in listed.json()["items"] if not m["from_me"]]
        assert theirs, listed.json()
        for m in theirs:
            TypeAdapter(MessageReceivedData).validate_python(m)
            assert (m["chat_id"], m["from_id"], m["author"], m["is_group"]) == (chat, chat, None, False)
        senders[chat] = {m["from"] for m in theirs}
    known = [c for c, s in senders.items() if s != {None}]
    unknown = [c for c, s in senders.items() if s == {None}]
    assert len(known) == 1 and len(unknown) == 1, senders
    (phone,) = senders[known[0]]
    assert phone.isdigit() and phone != known[0].split("@")[0]  # the page's number, never the lid's digits
    # group members that are @lid: the author is the phone id where known, the lid otherwise; never a fake number
    lid_authors = 0
    for gid in group_chats:
        listed = await api.get(f"/v1/workspaces/{ws}/sessions/l1/chats/{gid}/messages", params={"limit": 50})
        assert listed.status_code == 200, listed.text
        for m in (m for m in listed.json()["items"] if not m["from_me"]):
            assert m["chat_id"] == gid and m["is_group"] is True and m["author"], m
            if m["from_id"].endswith("@lid"):
                lid_authors += 1
                assert m["from"] is None or m["author"] == f"{m['from']}@c.us", m
                assert m["from"] is None or m["from"] != m["from_id"].split("@")[0]
            else:
                assert m["from"] == m["from_id"].split("@")[0] and m["author"] == m["from_id"], m
    assert lid_authors, "the seeded groups have @lid members who wrote"
