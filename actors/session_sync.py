"""History sync: a linked session's chats, contacts and recent messages, read from its page, as events.

Runs in the BrowserHost that holds the session's page (BrowserHost.sync), reading through
sessions/conversations.PageConversations: the page's own store is the source, nothing is kept on our side.
A run publishes, all carrying its `sync_id`:

* `session.sync` `{phase, done, total}`: at the start of each phase (`chats`, `contacts`, `messages`) and
  after each of its batches, then `done` (or `failed`);
* `chats.synced` `{batch, chats}`: the newest `max_chats` chats, newest first, <= 100 per event;
* `contacts.synced` `{batch, contacts}`: every contact (people: `@c.us`, `@lid`), <= 200 per event;
* `messages.synced` `{batch, chat_id, messages}`: per chat (in the chats' order), its newest
  `messages_per_chat` messages of the last `days`, oldest first, <= 100 per event, typed as
  `message.received` plus `from_me` (actors/history_messages.py).

Invariants:
* One run per session at a time (`SessionSync.start` answers None while one runs); the host's event loop
  decides it, and a session's page lives in exactly one host.
* `batch` counts from 1 within a run for chats and contacts, and within a chat for messages; `done` never
  goes down within a phase and ends equal to `total`.
* A repeated run over an unchanged page publishes the same ids (chats, contacts, messages, media ids): the
  receiving side dedupes by them.
* A failure (the page went away, a chat vanished mid-run is skipped, not a failure) publishes `failed` and
  ends the run; it never raises into the host. The log names the session and the exception type only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from wa_ray.actors.history_messages import history_payload
from wa_ray.events import CHATS_SYNCED, CONTACTS_SYNCED, MESSAGES_SYNCED, SESSION_SYNC, Event
from wa_ray.sessions.conversations import MAX_PAGE, ChatNotFound, PageConversations
from wa_ray.storage.events import EventLog
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicy, MediaPolicyStore
from wa_ray.storage.messages import MessageStore
from wa_ray.storage.sync_policy import SyncPolicy, SyncPolicyStore

log = logging.getLogger(__name__)

CHATS_PER_EVENT = 100
CONTACTS_PER_EVENT = 200
MESSAGES_PER_EVENT = 100
CONTACTS_MAX = 100_000  # a bound on what one run reads, far above any address book
Reason = Literal["link", "api"]
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


def new_sync_id() -> str:
    return f"syn_{secrets.token_hex(8)}"


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@dataclass
class SyncRun:
    """One run over one page; `publish(type, data)` puts an event of the session on its stream."""

    sync_id: str
    ws: str
    sid: str
    conversations: PageConversations
    policy: SyncPolicy
    media_policy: MediaPolicy
    pending: PendingMediaStore
    message_of: Callable[[str], Awaitable[str | None]]
    publish: Publish

    async def run(self) -> None:
        phase = "chats"
        try:
            chats = await self._chats()
            phase = "contacts"
            await self._contacts()
            phase = "messages"
            await self._messages(chats)
            await self._progress("done", len(chats), len(chats))
        except asyncio.CancelledError:  # the session closed: say so, then stop as asked
            await self._failed(phase)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends the run with `failed`, never the host
            log.warning("sync %s of %s/%s failed in %s: %s", self.sync_id, self.ws, self.sid, phase,
                        type(exc).__name__)
            await self._failed(phase)

    async def _failed(self, phase: str) -> None:
        try:
            await self.publish(SESSION_SYNC, {"sync_id": self.sync_id, "phase": "failed", "done": 0, "total": 0,
                                              "failed_in": phase})
        except Exception as exc:  # noqa: BLE001 - Redis gone too: the log is all that is left
            log.warning("sync %s of %s/%s: failure not published (%s)", self.sync_id, self.ws, self.sid,
                        type(exc).__name__)

    async def _progress(self, phase: str, done: int, total: int) -> None:
        await self.publish(SESSION_SYNC, {"sync_id": self.sync_id, "phase": phase, "done": done, "total": total})

    async def _typed(self, raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            return None
        return await history_payload(self.ws, self.sid, raw, self.pending, policy=self.media_policy,
                                     message_of=self.message_of)

    async def _chats(self) -> list[dict[str, Any]]:
        """The newest `max_chats` chats, published in batches; returned for the messages phase."""
        limit = self.policy.max_chats
        chats: list[dict[str, Any]] = []
        cursor: tuple[int, str] | None = None
        total: int | None = None
        while len(chats) < limit:
            page = await self.conversations.chats(cursor=cursor, limit=min(MAX_PAGE, limit - len(chats)))
            if total is None:
                total = min(limit, page.total)
                await self._progress("chats", 0, total)
            for raw in page.items:
                if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                    chats.append({**raw, "last_message": await self._typed(raw.get("last_message"))})
            if page.next is None or not page.items:
                break
            cursor = page.next
        chats = chats[:limit]
        total = len(chats)  # what the page really gave (a chat may have gone meanwhile)
        for n, batch in enumerate(_batches(chats, CHATS_PER_EVENT), 1):
            await self.publish(CHATS_SYNCED, {"sync_id": self.sync_id, "batch": n, "chats": batch})
            await self._progress("chats", min(n * CHATS_PER_EVENT, total), total)
        return chats

    async def _contacts(self) -> None:
        contacts: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(contacts) < CONTACTS_MAX:
            page = await self.conversations.contacts(cursor=cursor, limit=MAX_PAGE)
            contacts.extend(c for c in page.items if isinstance(c, dict) and isinstance(c.get("id"), str))
            if page.next is None or not page.items:
                break
            cursor = page.next
        total = len(contacts)
        await self._progress("contacts", 0, total)
        for n, batch in enumerate(_batches(contacts, CONTACTS_PER_EVENT), 1):
            await self.publish(CONTACTS_SYNCED, {"sync_id": self.sync_id, "batch": n, "contacts": batch})
            await self._progress("contacts", min(n * CONTACTS_PER_EVENT, total), total)

    async def _messages(self, chats: list[dict[str, Any]]) -> None:
        total = len(chats)
        await self._progress("messages", 0, total)
        per_chat = self.policy.messages_per_chat
        since = int(time.time()) - self.policy.days * 86400
        for done, chat in enumerate(chats, 1):
            if per_chat > 0:
                await self._chat_messages(chat["id"], per_chat, since)
            await self._progress("messages", done, total)

    async def _chat_messages(self, chat_id: str, limit: int, since: int) -> None:
        try:
            raw = await self.conversations.chat_messages(chat_id, limit=limit, since_ts=since)
        except ChatNotFound:
            return  # deleted on the phone since the chats phase: nothing of it to sync
        messages = [m for m in [await self._typed(r) for r in raw.items[-limit:]] if m is not None]
        for n, batch in enumerate(_batches(messages, MESSAGES_PER_EVENT), 1):
            await self.publish(MESSAGES_SYNCED, {"sync_id": self.sync_id, "batch": n, "chat_id": chat_id,
                                                 "messages": batch})


class SessionSync:
    """The sync runs of one BrowserHost: at most one per session, each a task of its own."""

    def __init__(self, redis: aioredis.Redis, media_retention_s: int) -> None:
        self._events = EventLog(redis)
        self._policies = SyncPolicyStore(redis)
        self._media_policies = MediaPolicyStore(redis)
        self._pending = PendingMediaStore(redis, media_retention_s)
        self._messages = MessageStore(redis)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}

    def running(self, ws: str, sid: str) -> bool:
        task = self._running.get((ws, sid))
        return task is not None and not task.done()

    async def start(self, ws: str, sid: str, conversations: PageConversations, reason: Reason) -> str | None:
        """The new run's id; None when the session already runs one, or for a `link` run when the
        workspace's policy says not to sync on link."""
        if self.running(ws, sid):
            return None
        policy = await self._policies.get(ws)
        if reason == "link" and not policy.on_link:
            return None
        media_policy = await self._media_policies.get(ws)
        if self.running(ws, sid):  # another start got in while the policies were read
            return None
        sync_id = new_sync_id()

        async def publish(type_: str, data: dict[str, Any]) -> None:
            await self._events.publish(Event(type_, ws, sid, data))

        run = SyncRun(sync_id, ws, sid, conversations, policy, media_policy, self._pending,
                      functools.partial(self._messages.by_wa_id, ws), publish)
        task = asyncio.get_running_loop().create_task(run.run(), name=f"sync {ws}/{sid}")
        self._running[(ws, sid)] = task
        task.add_done_callback(lambda t, key=(ws, sid): self._forget(key, t))
        log.info("sync %s of %s/%s started (%s)", sync_id, ws, sid, reason)
        return sync_id

    def _forget(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    def cancel(self, ws: str, sid: str) -> None:
        task = self._running.get((ws, sid))
        if task is not None:
            task.cancel()
