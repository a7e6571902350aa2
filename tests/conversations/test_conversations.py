"""Issue 14, live conversations through the public API against the simulator: a phone with a seeded history
(120 chats, 81 messages each, 3 groups, saved contacts, @lid contacts with and without a known phone) links
a session; the page receives the history at sync and the API reads it from the page.

Covered: chat pages in order and complete (cursor, archived filter, last message typed as message.received
plus from_me), a chat's messages before/after cursors down to messages the page had to load from the phone,
contact search and detail (profile picture URL, @lid without a number), the number check (true/false and
its per-session rate limit), read (the phone sees read receipts, the unread count clears), presence (the
phone sees composing, then paused), groups and participants (@lid resolved where the page knows it), and
the errors: 409 for an unlinked session, 404 for an unknown session, chat or contact.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from tests.conftest import ADMIN_KEY_ID
from tests.conversations.helpers import Seeded, all_chats, history_number, seed_and_link, wait_for
from wa_ray.serve_app.conversation_models import ChatOut, ContactOut, GroupOut, ParticipantOut
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.signing import HmacAuth

WS, SID, NUMBER, SEED = "conv-live", "c1", "15557140", 7
M = 81  # messages per chat: the page holds the latest 50, the rest comes from the phone; the last is theirs
HISTORY = {"chats": 120, "messages_per_chat": M, "groups": 3, "contacts": 30, "lid_contacts": 2,
           "lid_unknown": 2, "days": 30, "seed": SEED}
MESSAGE = TypeAdapter(MessageReceivedData)
TYPING = {"typing": True, "typing_min_s": 1.0, "typing_max_s": 1.0, "typing_per_char_s": 0.0, "typing_jitter": 0.0}


@pytest.fixture(scope="module")
async def live(service, web_sim, admin_secret: str) -> AsyncIterator[Seeded]:
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(ADMIN_KEY_ID, admin_secret),
                                 timeout=30) as api, httpx.AsyncClient(base_url=web_sim.url, timeout=30) as phone:
        # a fixed typing delay for the paced send below (set before the session's sender first reads it)
        paced = await api.put(f"/v1/workspaces/{WS}/pacing", json=TYPING)
        assert paced.status_code == 200, paced.text
        yield await seed_and_link(api, phone, service.base_url, WS, SID, NUMBER, HISTORY)


async def test_chat_pages_are_complete_and_ordered(api, live: Seeded) -> None:
    items = await all_chats(api, live.base, limit=50)
    assert [c["id"] for c in items] == live.chats  # newest first, each once, across 3 pages
    for chat in items:
        ChatOut.model_validate(chat)
    stamps = [c["timestamp"] for c in items]
    assert stamps == sorted(stamps, reverse=True)
    groups = [c for c in items if c["is_group"]]
    assert len(groups) == 3 and all(c["id"].endswith("@g.us") for c in groups)
    last = items[5]["last_message"]
    assert last is not None and isinstance(last["from_me"], bool)
    MESSAGE.validate_python(last)
    assert last["chat_id"] == items[5]["id"] and last["timestamp"] == items[5]["timestamp"]

    first = (await api.get(f"{live.base}/chats", params={"limit": 7})).json()
    assert [c["id"] for c in first["items"]] == live.chats[:7] and first["next_cursor"]
    second = (await api.get(f"{live.base}/chats", params={"limit": 7, "cursor": first["next_cursor"]})).json()
    assert [c["id"] for c in second["items"]] == live.chats[7:14]

    archived = await all_chats(api, live.base, archived="true")
    assert archived and all(c["archived"] for c in archived)
    unarchived = await all_chats(api, live.base, archived="false")
    assert len(archived) + len(unarchived) == len(live.chats)
    assert not any(c["archived"] for c in unarchived)


async def _messages(api: httpx.AsyncClient, live: Seeded, chat: str, **params: Any) -> dict[str, Any]:
    got = await api.get(f"{live.base}/chats/{chat}/messages", params=params)
    assert got.status_code == 200, got.text
    for item in got.json()["items"]:
        MESSAGE.validate_python(item)
    return got.json()


async def test_messages_before_and_after_cursors(api, live: Seeded) -> None:
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    newest = await _messages(api, live, chat, limit=30)
    assert len(newest["items"]) == 30 and newest["has_more"] is True
    older = await _messages(api, live, chat, limit=30, before=newest["before_cursor"])
    assert len(older["items"]) == 30 and older["has_more"] is True
    oldest = await _messages(api, live, chat, limit=30, before=older["before_cursor"])  # loaded from the phone
    assert len(oldest["items"]) == M - 60 and oldest["has_more"] is False
    everything = oldest["items"] + older["items"] + newest["items"]
    ids = [m["wa_message_id"] for m in everything]
    assert len(set(ids)) == M
    stamps = [m["timestamp"] for m in everything]
    assert stamps == sorted(stamps) and len(set(stamps)) == M  # oldest to newest, no gap, no overlap
    assert {m["chat_id"] for m in everything} == {chat}
    assert any(m["from_me"] for m in everything) and not all(m["from_me"] for m in everything)
    assert {m["kind"] for m in everything} >= {"text", "image"}
    image = next(m for m in everything if m["kind"] == "image")
    assert image["media"]["status"] == "pending" and image["media"]["media_id"]

    newer = await _messages(api, live, chat, limit=30, after=oldest["after_cursor"])
    assert [m["wa_message_id"] for m in newer["items"]] == ids[M - 60:M - 30] and newer["has_more"] is True
    tail = await _messages(api, live, chat, limit=100, after=older["after_cursor"])
    assert [m["wa_message_id"] for m in tail["items"]] == ids[M - 30:] and tail["has_more"] is False
    caught_up = await _messages(api, live, chat, after=tail["after_cursor"])
    assert caught_up["items"] == [] and caught_up["has_more"] is False
    assert caught_up["after_cursor"] == tail["after_cursor"]  # poll again from the same place
    again = await _messages(api, live, chat, limit=30)
    assert [m["wa_message_id"] for m in again["items"]] == ids[M - 30:]  # the same ids (and media ids) again
    assert [m.get("media") for m in again["items"]] == [m.get("media") for m in newest["items"]]


async def test_contacts_search_and_detail(api, live: Seeded) -> None:
    number = history_number(SEED, 3)
    found = await api.get(f"{live.base}/contacts", params={"q": number})
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert [c["id"] for c in items] == [f"{number}@c.us"]
    contact = ContactOut.model_validate(items[0])
    assert (contact.number, contact.is_my_contact) == (number, True) and contact.name

    by_name = (await api.get(f"{live.base}/contacts", params={"q": contact.name.upper()})).json()["items"]
    assert f"{number}@c.us" in [c["id"] for c in by_name]

    pages, cursor = [], None
    while True:
        page = (await api.get(f"{live.base}/contacts", params={"limit": 20, **({"cursor": cursor} if cursor else {})}
                              )).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [c["id"] for c in pages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and len(ids) >= 30
    lids = [c for c in pages if c["id"].endswith("@lid")]
    assert any(c["number"] is None for c in lids)  # a lid whose phone the page does not know: no number
    assert any(c["number"] for c in lids)  # and one it knows
    assert all(c["number"] is None or c["number"].isdigit() for c in pages)

    detail = await api.get(f"{live.base}/contacts/{number}@c.us")
    assert detail.status_code == 200, detail.text
    out = ContactOut.model_validate(detail.json())
    assert out.id == f"{number}@c.us" and out.profile_picture_url and out.profile_picture_url.startswith("http")
    missing = await api.get(f"{live.base}/contacts/15550001111@c.us")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "contact_not_found"


async def test_read_clears_unread_and_the_phone_sees_it(api, phone_api, live: Seeded) -> None:
    chat = next(c for c in await all_chats(api, live.base) if c["id"].endswith("@c.us") and c["unread_count"] > 0)
    partner = chat["id"].split("@")[0]
    before = time.time() - 1
    read = await api.post(f"{live.base}/chats/{chat['id']}/read")
    assert read.status_code == 200, read.text
    assert read.json() == {"chat_id": chat["id"], "read": True}

    async def reads() -> list[dict[str, Any]]:
        return (await phone_api.get(f"/_phone/{partner}/reads")).json()["reads"]

    got = await wait_for(reads, lambda r: any(x["ts"] >= before for x in r))
    assert sum(len(x["ids"]) for x in got) >= chat["unread_count"]
    listed = {c["id"]: c for c in await all_chats(api, live.base)}
    assert listed[chat["id"]]["unread_count"] == 0


async def test_presence_shows_on_the_phone(api, phone_api, live: Seeded) -> None:
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    partner = chat.split("@")[0]
    since = time.time() - 1
    for state in ("recording", "typing", "paused"):
        sent = await api.post(f"{live.base}/chats/{chat}/presence", json={"state": state})
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"chat_id": chat, "state": state}

    async def states() -> list[str]:
        got = (await phone_api.get(f"/_phone/{partner}/chatstates")).json()["states"]
        return [s["state"] for s in got if s["ts"] >= since]

    seen = await wait_for(states, lambda s: s[-3:] == ["recording", "composing", "paused"])
    assert seen[-3:] == ["recording", "composing", "paused"]
    bad = await api.post(f"{live.base}/chats/{chat}/presence", json={"state": "online"})
    assert bad.status_code == 422
    unknown = await api.post(f"{live.base}/chats/15550001111@c.us/presence", json={"state": "typing"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "chat_not_found"


async def test_groups_and_participants(api, live: Seeded) -> None:
    got = await api.get(f"{live.base}/groups")
    assert got.status_code == 200, got.text
    groups = [GroupOut.model_validate(g) for g in got.json()["items"]]
    assert [g.id for g in groups] == [c for c in live.chats if c.endswith("@g.us")]
    assert all(g.is_group and g.participants_count == 6 for g in groups)

    part = await api.get(f"{live.base}/groups/{groups[0].id}/participants")
    assert part.status_code == 200, part.text
    people = [ParticipantOut.model_validate(p) for p in part.json()["items"]]
    assert len(people) == 6
    owner = next(p for p in people if p.id == f"{NUMBER}@c.us")
    assert owner.is_super_admin and owner.is_admin and owner.number == NUMBER
    assert sum(1 for p in people if p.id.endswith("@lid")) == 1  # the lid the page cannot resolve
    assert all((p.number is None) == p.id.endswith("@lid") for p in people)  # never a number made from a lid
    assert all(p.number == p.id.split("@")[0] for p in people if p.number)

    not_group = await api.get(f"{live.base}/groups/120363000999999@g.us/participants")
    assert not_group.status_code == 404 and not_group.json()["error"]["code"] == "chat_not_found"


async def test_unknown_session_chat_and_unlinked_session(api, live: Seeded) -> None:
    gone = await api.get(f"/v1/workspaces/{WS}/sessions/nope/chats")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "session_not_found"
    chat = await api.get(f"{live.base}/chats/15550001111@c.us/messages")
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "chat_not_found"
    read = await api.post(f"{live.base}/chats/15550001111@c.us/read")
    assert read.status_code == 404 and read.json()["error"]["code"] == "chat_not_found"

    created = await api.post(f"/v1/workspaces/{WS}/sessions", json={"session_id": "c-unlinked"})
    assert created.status_code == 201, created.text
    try:
        base = f"/v1/workspaces/{WS}/sessions/c-unlinked"
        for response in (await api.get(f"{base}/chats"), await api.get(f"{base}/contacts"),
                         await api.post(f"{base}/chats/15550001111@c.us/read"),
                         await api.get(f"{base}/contacts/15550001111/exists")):
            assert response.status_code == 409, response.text
            error = response.json()["error"]
            assert error["code"] == "session_unavailable" and error["details"]["state"] != "connected"
    finally:
        await api.delete(f"/v1/workspaces/{WS}/sessions/c-unlinked")


async def test_paced_send_shows_typing_for_its_delay(api, phone_api, live: Seeded) -> None:
    """Pacing's typing delay, when on, is shown in the recipient's chat: typing for the delay, then paused."""
    partner = history_number(SEED, 11)
    since = time.time() - 0.5
    sent = await api.post(f"/v1/workspaces/{WS}/messages", json={"to": partner, "text": "on my way",
                                                                 "session_id": SID})
    assert sent.status_code == 202, sent.text

    async def states() -> list[dict[str, Any]]:
        got = (await phone_api.get(f"/_phone/{partner}/chatstates")).json()["states"]
        return [s for s in got if s["ts"] >= since]

    seen = await wait_for(states, lambda s: [x["state"] for x in s][-2:] == ["composing", "paused"], timeout_s=20)
    composing, paused = seen[-2], seen[-1]
    assert paused["ts"] - composing["ts"] >= 0.9  # shown for the typing delay (1 s), not flashed
    assert composing["chat"].split("@")[0] in (partner, NUMBER)

    async def status() -> str:
        return (await api.get(f"/v1/workspaces/{WS}/messages/{sent.json()['message_id']}")).json()["status"]

    await wait_for(status, lambda st: st in ("sent", "delivered", "read"), timeout_s=20)


async def test_number_check_and_its_rate_limit(api, phone_api, live: Seeded) -> None:
    """Last in the module: it spends the session's whole number-check budget."""
    known = history_number(SEED, 5)
    yes = await api.get(f"{live.base}/contacts/{known}/exists")
    assert yes.status_code == 200, yes.text
    assert yes.json() == {"number": known, "exists": True, "id": f"{known}@c.us"}
    no = await api.get(f"{live.base}/contacts/15550009999/exists")
    assert no.status_code == 200 and no.json() == {"number": "15550009999", "exists": False, "id": None}

    limited = None
    for _ in range(40):
        got = await api.get(f"{live.base}/contacts/15550009999/exists")
        if got.status_code == 429:
            limited = got
            break
        assert got.status_code == 200, got.text
    assert limited is not None, "the number check was never limited"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    # per session: the listing routes of the same session are not limited by it
    assert (await api.get(f"{live.base}/chats", params={"limit": 1})).status_code == 200
