"""actors/session_sync.py on a real Redis event stream, the page's conversations given by a stand-in with
PageConversations' interface (the real page is in tests/sync/): batching, order, progress, limits, one
run per session, and a failure that ends the run with `failed` instead of raising."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from wa_ray.actors.session_sync import SessionSync
from wa_ray.serve_app.sync_event_models import SYNC_EVENT_MODELS
from wa_ray.sessions.conversations import ChatNotFound, ChatPageRaw, ContactPageRaw, MessagesRaw
from wa_ray.storage.events import EventLog
from wa_ray.storage.sync_policy import SyncPolicy, SyncPolicyStore

pytestmark = pytest.mark.asyncio
WS, SID = "ws-sync", "s1"
NOW = int(time.time())


class Page:
    """Chats t desc; each chat has 3 messages, one of them 40 days old."""

    def __init__(self, n_chats: int, n_contacts: int, fail_messages: bool = False, gate: asyncio.Event | None = None):
        self.chats_ = [{"id": f"1555{i:07d}@c.us", "name": f"c{i}", "is_group": False, "unread_count": 0,
                        "archived": False, "pinned": False, "muted": False, "read_only": False,
                        "timestamp": NOW - i, "last_message": None} for i in range(n_chats)]
        self.contacts_ = [{"id": f"1666{i:07d}@c.us", "number": f"1666{i:07d}", "name": None}
                          for i in range(n_contacts)]
        self.fail_messages, self.gate = fail_messages, gate

    async def chats(self, *, cursor=None, limit=50, archived=None, groups=False) -> ChatPageRaw:
        start = 0 if cursor is None else next(i for i, c in enumerate(self.chats_) if c["id"] == cursor[1]) + 1
        page = self.chats_[start:start + limit]
        nxt = (page[-1]["timestamp"], page[-1]["id"]) if start + limit < len(self.chats_) else None
        return ChatPageRaw(page, nxt, len(self.chats_))

    async def contacts(self, *, query=None, cursor=None, limit=50) -> ContactPageRaw:
        start = 0 if cursor is None else next(i for i, c in enumerate(self.contacts_) if c["id"] == cursor) + 1
        page = self.contacts_[start:start + limit]
        return ContactPageRaw(page, page[-1]["id"] if start + limit < len(self.contacts_) else None)

    async def chat_messages(self, chat_id: str, *, before=None, after=None, limit=50, since_ts=None) -> MessagesRaw:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_messages:
            raise RuntimeError("page gone")
        if chat_id.endswith("0000001@c.us"):
            raise ChatNotFound()
        me = "15550000000@c.us"
        msgs = [{"id": f"{k == 2}_{chat_id}_{k}".lower(), "from": me if k == 2 else chat_id,
                 "to": chat_id if k == 2 else me, "type": "chat", "body": f"m{k}", "t": NOW - age,
                 "fromMe": k == 2} for k, age in enumerate((40 * 86400, 60, 30))]
        msgs = [m for m in msgs if since_ts is None or m["t"] >= since_ts]
        return MessagesRaw(msgs[-limit:], False)


async def run_sync(redis, page: Page, policy: SyncPolicy = SyncPolicy()) -> tuple[str, list[dict[str, Any]]]:
    await SyncPolicyStore(redis).set(WS, policy)
    sync, log = SessionSync(redis, 600), EventLog(redis)
    last = await log.last_id(WS)
    sync_id = await sync.start(WS, SID, page, "api")  # type: ignore[arg-type]
    assert sync_id is not None
    await sync._running[(WS, SID)]
    events = await log.read_after(WS, last, block_ms=0, count=100_000)
    for e in events:
        SYNC_EVENT_MODELS[e["type"]].model_validate(e)  # what is published is what the OpenAPI says
        assert e["data"]["sync_id"] == sync_id and e["session_id"] == SID
    return sync_id, events


def progress(events: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(e["data"]["phase"], e["data"]["done"], e["data"]["total"]) for e in events if e["type"] == "session.sync"]


async def test_everything_in_batches_in_order(redis) -> None:
    _, events = await run_sync(redis, Page(250, 450))
    chat_batches = [e["data"] for e in events if e["type"] == "chats.synced"]
    assert [b["batch"] for b in chat_batches] == [1, 2, 3] and [len(b["chats"]) for b in chat_batches] == [100, 100, 50]
    ids = [c["id"] for b in chat_batches for c in b["chats"]]
    assert ids == [f"1555{i:07d}@c.us" for i in range(250)]
    assert [len(e["data"]["contacts"]) for e in events if e["type"] == "contacts.synced"] == [200, 200, 50]
    synced = [e["data"] for e in events if e["type"] == "messages.synced"]
    assert len(synced) == 249  # one chat vanished mid-run: skipped
    assert all([m["text"] for m in s["messages"]] == ["m1", "m2"] for s in synced)  # 30 days back, oldest first
    assert all(s["messages"][1]["from_me"] and s["messages"][1]["chat_id"] == s["chat_id"] for s in synced)
    steps = progress(events)
    assert steps[-1] == ("done", 250, 250)
    phases = [p for p, _, _ in steps]
    assert phases == sorted(phases, key=["chats", "contacts", "messages", "done"].index)
    for phase in ("chats", "contacts", "messages"):
        done = [d for p, d, _ in steps if p == phase]
        assert done == sorted(done) and done[0] == 0


async def test_limits(redis) -> None:
    _, events = await run_sync(redis, Page(30, 3), SyncPolicy(days=60, max_chats=12, messages_per_chat=2))
    assert sum(len(e["data"]["chats"]) for e in events if e["type"] == "chats.synced") == 12
    synced = [e["data"] for e in events if e["type"] == "messages.synced"]
    assert len(synced) == 11 and all([m["text"] for m in s["messages"]] == ["m1", "m2"] for s in synced)
    _, none = await run_sync(redis, Page(5, 0), SyncPolicy(messages_per_chat=0))
    assert not [e for e in none if e["type"] == "messages.synced"]


async def test_one_run_at_a_time_and_on_link_policy(redis) -> None:
    gate = asyncio.Event()
    sync = SessionSync(redis, 600)
    first = await sync.start(WS, SID, Page(3, 1, gate=gate), "api")  # type: ignore[arg-type]
    assert first and await sync.start(WS, SID, Page(3, 1), "api") is None  # type: ignore[arg-type]
    gate.set()
    await sync._running[(WS, SID)]
    await SyncPolicyStore(redis).set(WS, SyncPolicy(on_link=False))
    assert await sync.start(WS, SID, Page(3, 1), "link") is None  # type: ignore[arg-type]
    assert await sync.start(WS, SID, Page(3, 1), "api") not in (None, first)  # type: ignore[arg-type]
    await sync._running[(WS, SID)]


async def test_a_failure_publishes_failed_and_does_not_raise(redis) -> None:
    _, events = await run_sync(redis, Page(3, 1, fail_messages=True))
    assert progress(events)[-1][0] == "failed"
    assert events[-1]["data"]["failed_in"] == "messages"
