"""Issue 14, history sync on the real stack: a simulator phone with a seeded history is linked, and the
session publishes its chats, contacts and recent messages as events (chats.synced, contacts.synced,
messages.synced with session.sync progress), read from its page. Through the public API and SSE only."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx
from pydantic import TypeAdapter

from tests.events import EventCollector, collect_events
from tests.flows import link_session, stream_url
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.serve_app.sync_event_models import SYNC_EVENT_MODELS

SYNC_TYPES = ("session.sync", "chats.synced", "contacts.synced", "messages.synced")
PHASES = ["chats", "contacts", "messages", "done"]
MESSAGE = TypeAdapter(MessageReceivedData)
RUN_TIMEOUT_S = 180.0


async def sync_run(events: EventCollector, sid: str, sync_id: str | None = None) -> dict[str, Any]:
    """The events of one run (the first of the session when `sync_id` is None), once it is done; each
    checked against its documented model."""
    done = await events.wait_for(lambda e: e["type"] == "session.sync" and e["session_id"] == sid
                                 and e["data"]["phase"] in ("done", "failed")
                                 and (sync_id is None or e["data"]["sync_id"] == sync_id), RUN_TIMEOUT_S)
    assert done["data"]["phase"] == "done", done
    run_id = done["data"]["sync_id"]
    mine = [e for e in events.events if e["type"] in SYNC_TYPES and e["data"].get("sync_id") == run_id]
    for event in mine:
        assert event["session_id"] == sid
        SYNC_EVENT_MODELS[event["type"]].model_validate(event)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in mine:
        by_type[event["type"]].append(event["data"])
    return {"sync_id": run_id, **by_type}


def sync_ids(events: EventCollector, sid: str) -> set[str]:
    return {e["data"]["sync_id"] for e in events.events if e["type"] == "session.sync" and e["session_id"] == sid}


def chat_ids(run: dict[str, Any]) -> list[str]:
    assert [b["batch"] for b in run["chats.synced"]] == list(range(1, len(run["chats.synced"]) + 1))
    assert all(len(b["chats"]) <= 100 for b in run["chats.synced"])
    return [c["id"] for b in run["chats.synced"] for c in b["chats"]]


def contact_ids(run: dict[str, Any]) -> list[str]:
    assert all(len(b["contacts"]) <= 200 for b in run.get("contacts.synced", []))
    return [c["id"] for b in run.get("contacts.synced", []) for c in b["contacts"]]


def messages_by_chat(run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for batch in run.get("messages.synced", []):
        assert 0 < len(batch["messages"]) <= 100
        out[batch["chat_id"]] += batch["messages"]
    return out


def assert_progress(run: dict[str, Any], chats: int) -> None:
    steps = [(s["phase"], s["done"], s["total"]) for s in run["session.sync"]]
    phases = [p for p, _, _ in steps]
    assert phases == sorted(phases, key=PHASES.index), phases  # chats, contacts, messages, done: in order
    assert set(phases) == set(PHASES)
    for phase in PHASES[:3]:
        done = [d for p, d, _ in steps if p == phase]
        totals = {t for p, _, t in steps if p == phase}
        assert done == sorted(done) and done[0] == 0, (phase, done)  # monotonic, from 0
        assert len(totals) == 1 and done[-1] == totals.pop(), phase  # ends at its total
    assert steps[-1] == ("done", chats, chats)


async def put_policy(api: httpx.AsyncClient, ws: str, **policy: Any) -> dict[str, Any]:
    put = await api.put(f"/v1/workspaces/{ws}/sync-policy", json=policy)
    assert put.status_code == 200, put.text
    got = (await api.get(f"/v1/workspaces/{ws}/sync-policy")).json()
    assert got == put.json()
    return got


async def seed(phone_api: httpx.AsyncClient, number: str, **history: Any) -> dict[str, Any]:
    seeded = await phone_api.post(f"/_phone/{number}/history", json=history)
    assert seeded.status_code == 200, seeded.text
    return seeded.json()


async def post_sync(api: httpx.AsyncClient, ws: str, sid: str) -> str:
    started = await api.post(f"/v1/workspaces/{ws}/sessions/{sid}/sync")
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "started"
    return started.json()["sync_id"]


async def test_a_linked_phone_with_500_chats_syncs_complete_in_order_once(api, phone_api, service) -> None:
    ws, sid, number = "sync-full", "s1", "15557140001"
    assert await put_policy(api, ws) == {"days": 30, "max_chats": 500, "messages_per_chat": 50, "on_link": True}
    history = await seed(phone_api, number, chats=500, messages_per_chat=3, groups=5, contacts=260,
                         lid_contacts=2, lid_unknown=1, days=20, seed=714)
    assert len(history["chats"]) == 500
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        started = time.monotonic()
        await link_session(api, phone_api, events, ws, sid, number)
        first = await sync_run(events, sid)  # on link, by itself
        took = time.monotonic() - started

        # complete and in order: every seeded chat once, newest first, in batches of at most 100
        assert chat_ids(first) == history["chats"]
        assert [len(b["chats"]) for b in first["chats.synced"]] == [100] * 5
        assert_progress(first, 500)
        contacts = contact_ids(first)
        assert len(contacts) == len(set(contacts)) >= 260
        # every chat's messages, oldest first, typed like message.received plus from_me
        chats = {c["id"]: c for b in first["chats.synced"] for c in b["chats"]}
        by_chat = messages_by_chat(first)
        assert set(by_chat) <= set(chats) and len(by_chat) >= 490
        kinds, from_me = set(), set()
        for chat_id, msgs in by_chat.items():
            stamps = [m["timestamp"] for m in msgs]
            assert stamps == sorted(stamps), chat_id
            assert len(msgs) <= 3
            for m in msgs:
                MESSAGE.validate_python(m)
                assert m["chat_id"] == chat_id and isinstance(m["from_me"], bool)
                kinds.add(m["kind"])
                from_me.add(m["from_me"])
            last = chats[chat_id]["last_message"]
            assert last is None or last["wa_message_id"] == msgs[-1]["wa_message_id"]
        assert from_me == {True, False} and "text" in kinds
        media = {m["wa_message_id"]: m["media"] for msgs in by_chat.values() for m in msgs if m.get("media")}
        assert media and all(x["status"] == "pending" and x["media_id"] for x in media.values())
        # a media announced by the sync is served from the page on its first GET
        some_id = next(iter(media.values()))["media_id"]
        got = await api.get(f"/v1/workspaces/{ws}/media/{some_id}")
        assert got.status_code == 200 and len(got.content) > 0, got.text

        # once on link: no second run by itself
        await asyncio.sleep(2)
        assert sync_ids(events, sid) == {first["sync_id"]}

        # a second sync adds nothing new: the same chats, contacts, messages and media ids
        second_id = await post_sync(api, ws, sid)
        assert second_id != first["sync_id"]
        second = await sync_run(events, sid, second_id)
        assert chat_ids(second) == chat_ids(first)
        assert sorted(contact_ids(second)) == sorted(contacts)
        again = messages_by_chat(second)
        assert {c: [m["wa_message_id"] for m in ms] for c, ms in again.items()} == \
               {c: [m["wa_message_id"] for m in ms] for c, ms in by_chat.items()}
        assert {m["wa_message_id"]: m["media"]["media_id"] for ms in again.values() for m in ms if m.get("media")} \
               == {k: v["media_id"] for k, v in media.items()}
        assert_progress(second, 500)

        # a restore (restart from the saved auth state) is not a new link: no sync by itself
        ready_before = len([e for e in events.events if e["type"] == "session.ready" and e["session_id"] == sid])
        restarted = await api.post(f"/v1/workspaces/{ws}/sessions/{sid}/restart")
        assert restarted.status_code == 200, restarted.text
        await events.wait_for(lambda e: len([x for x in events.events if x["type"] == "session.ready"
                                             and x["session_id"] == sid]) > ready_before, 60)
        await asyncio.sleep(3)
        assert sync_ids(events, sid) == {first["sync_id"], second_id}
    print(f"sync of 500 chats on link: {took:.1f} s from create")


async def test_the_policy_limits_what_a_sync_reads(api, phone_api, service) -> None:
    ws, sid, number = "sync-limits", "s1", "15557140002"
    await put_policy(api, ws, days=5, max_chats=40, messages_per_chat=2, on_link=False)
    history = await seed(phone_api, number, chats=100, messages_per_chat=6, groups=2, contacts=20,
                         lid_contacts=1, lid_unknown=1, days=30, seed=715)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, sid, number)
        await asyncio.sleep(3)
        assert sync_ids(events, sid) == set()  # on_link false: nothing by itself
        sync_id = await post_sync(api, ws, sid)
        run = await sync_run(events, sid, sync_id)
    assert chat_ids(run) == history["chats"][:40]  # the newest 40
    assert_progress(run, 40)
    cutoff = time.time() - 5 * 86400 - 60
    by_chat = messages_by_chat(run)
    assert by_chat, "no chat had a message within 5 days"
    for chat_id, msgs in by_chat.items():
        assert chat_id in history["chats"][:40]
        assert 1 <= len(msgs) <= 2
        assert all(m["timestamp"] >= cutoff for m in msgs), chat_id


async def test_a_number_linked_with_a_pairing_code_syncs_on_link(api, phone_api, service) -> None:
    ws, sid, number = "sync-code", "s1", "15557140004"
    history = await seed(phone_api, number, chats=30, messages_per_chat=2, groups=1, contacts=5,
                         lid_contacts=1, lid_unknown=1, days=10, seed=717)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        created = await api.post(f"/v1/workspaces/{ws}/sessions",
                                 json={"session_id": sid, "login": "code", "phone": number})
        assert created.status_code == 201, created.text
        got = await events.wait_for(lambda e: e["type"] == "session.pairing_code" and e["session_id"] == sid)
        entered = await phone_api.post(f"/_phone/{number}/pairing-code", json={"code": got["data"]["code"]})
        assert entered.status_code == 200, entered.text
        run = await sync_run(events, sid)
    assert chat_ids(run) == history["chats"]
    assert_progress(run, 30)
