"""Erase one data subject (a phone number) from one workspace: `DELETE /v1/workspaces/{ws}/contacts/{number}/data`.

What is erased, all of it scoped to the workspace (every key read or written here starts with the
workspace's prefix `wa:{ws}:`, so it is in the workspace's one slot of a Redis Cluster; another
workspace's data under the same number is never touched):

* messages: the outbound records to the number (`wa:{ws}:msg:<id>` with its history) and what points at
  them (the WhatsApp-id mapping `wa:{ws}:wamsg:*`, the Idempotency-Key `wa:{ws}:idem:*`). Inbound
  messages have no record of their own: they exist as `message.received` events only (below).
* media: every stored media (storage/media.py: metadata, expiry entry, the encrypted file; a lazily
  pending one too) named by an erased message or an erased event.
* events: the workspace event stream's entries (XDEL) whose data names the number anywhere (`to`, `from`,
  `chat_id`, `from_id`, `author`, a WhatsApp message id such as `true_<number>@c.us_...`, a sync batch
  that lists it) or that are about an erased message (`message_id`: acks, sent, failed). Deleted entries
  are acknowledged in every consumer group of the stream so no reader claims them later. The workspace's
  webhook dead letters (lists at rest) lose the same events.
* contacts: the number in each of the workspace's numbers' contact logs (storage/contact_log.py), their
  daily reply sets, and the campaign reply stamps (`wa:{ws}:cmp-contact:*`, `wa:{ws}:cmp-replied:*`).
* campaign recipients: its entry in each campaign of the workspace is replaced by an empty tombstone (the
  list keeps its length, so the runner's cursor and the other recipients' indexes stay right; the runner
  skips a tombstone), and the number leaves the campaign's phone set, assignment and index hashes; its
  erased messages leave the campaign's open set.
* markers: inbound dedupe marks (`wa:{ws}:seen:*`) whose WhatsApp id names the number.

What is NOT erased, and why:

* What already left the service: events delivered to webhook receivers or read over SSE, and events
  already fanned out into an endpoint's delivery queue (in flight, deleted there once settled); the
  backend that received them holds its own copy and is its own controller's concern.
* WhatsApp itself: the chats, contacts and history on the phone and in the linked WhatsApp Web page (the
  service keeps no copy of them: conversations are read live from the page), and Meta's Cloud API.
* Backups (`wa-ray backup` archives) written before the erase: they age out with `WA_BACKUP_KEEP`; a
  restore of an older archive must be followed by this erase again.
* Aggregate counters (per-day tallies, campaign status counts, metrics): they hold counts, not the number.
* Cloud API dedupe marks and mappings whose `wamid` is opaque (it does not show the number): they expire
  on their own (7 days) and hold no content.
* The audit stream: it never held the number (bodies are not recorded, and this route's path parameter is
  recorded redacted to its last two digits, serve_app/middleware.py).

Finding the outbound message records is a SCAN over `wa:{ws}:msg:*` (records are not indexed by recipient);
an erase is rare and this costs one pass over the keyspace (on a cluster, over the node that owns the
workspace's slot), in batches, never one blocking call.
The erase is idempotent: run twice, the second run finds nothing and answers zero counts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import orjson

from wa_ray.ids import is_valid_id
from wa_ray.storage import campaigns, keys
from wa_ray.storage.key_scan import scan_batches
from wa_ray.storage.redis_client import RedisClient

XRANGE_COUNT = 1000
_ERASED_RECIPIENT = orjson.dumps({"to": "", "v": {}}).decode()


@dataclass
class ErasureCounts:
    messages: int = 0
    media: int = 0
    events: int = 0
    contacts: int = 0
    campaign_recipients: int = 0
    dead_letters: int = 0
    markers: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SubjectMatcher:
    """Whether a value names the number: the bare digits, `+digits`, or a WhatsApp id `<digits>@c.us` /
    `<digits>@s.whatsapp.net`, alone or inside a message id (`true_<digits>@c.us_<hex>`). The digits
    must not continue to the left, so 5551234 never matches 15551234."""

    def __init__(self, number: str) -> None:
        self.number = number
        self._exact = {number, f"+{number}"}
        self._jid = re.compile(rf"(?<![0-9]){re.escape(number)}@(?:c\.us|s\.whatsapp\.net)")

    def names(self, value: str) -> bool:
        return value in self._exact or bool(self._jid.search(value))

    @property
    def chat_ids(self) -> tuple[str, ...]:
        return (f"{self.number}@c.us", f"{self.number}@s.whatsapp.net", self.number)

    def in_data(self, data: Any, message_ids: set[str]) -> bool:
        """Whether event data names the number anywhere, or is about one of `message_ids`."""
        for key, value in _walk(data):
            if isinstance(value, str) and (self.names(value) or (key == "message_id" and value in message_ids)):
                return True
        return False


def _walk(data: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, str(k))
    elif isinstance(data, list):
        for v in data:
            yield from _walk(v, key)
    else:
        yield key, data


def media_ids_in(data: Any) -> set[str]:
    """Every valid id under a `media_id` key, at any depth (an inbound event's `media.media_id`, a message
    content's `media_id`)."""
    return {v for k, v in _walk(data) if k == "media_id" and isinstance(v, str) and is_valid_id(v)}


MediaDelete = Callable[[str, str], Awaitable[None]]


class SubjectEraser:
    """`delete_media(ws, media_id)` removes one stored media (MediaStore.delete: file, metadata, expiry)."""

    def __init__(self, redis: RedisClient, delete_media: MediaDelete) -> None:
        self._redis = redis
        self._delete_media = delete_media

    async def erase(self, ws: str, number: str) -> ErasureCounts:
        if not is_valid_id(ws):
            raise ValueError("invalid workspace id")
        match = SubjectMatcher(number)
        counts = ErasureCounts()
        media: set[str] = set()
        message_ids = await self._messages(ws, match, counts, media)
        await self._events(ws, match, message_ids, counts, media)
        await self._dead_letters(ws, match, message_ids, counts)
        await self._markers(ws, match, message_ids, counts)
        await self._contacts(ws, match, counts)
        await self._campaigns(ws, match, message_ids, counts)
        for media_id in sorted(media):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.exists(keys.media(ws, media_id))
                pipe.delete(keys.media_pending(ws, media_id))
                stored, pending = await pipe.execute()
            await self._delete_media(ws, media_id)
            counts.media += 1 if (int(stored) or int(pending)) else 0
        return counts

    async def _messages(self, ws: str, match: SubjectMatcher, counts: ErasureCounts, media: set[str]) -> set[str]:
        erased: set[str] = set()
        prefix = keys.message(ws, "")
        async for names in scan_batches(self._redis, f"{prefix}*"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(name, "to", "content")
                rows = await pipe.execute()
            for name, (to, content) in zip(names, rows, strict=True):
                if not isinstance(to, str) or not match.names(to):
                    continue
                mid = name[len(prefix):]
                if content:
                    try:
                        media |= media_ids_in(orjson.loads(content))
                    except orjson.JSONDecodeError:
                        pass
                counts.messages += int(await self._redis.delete(keys.message(ws, mid),
                                                                keys.message_history(ws, mid)) > 0)
                erased.add(mid)
        return erased

    async def _events(self, ws: str, match: SubjectMatcher, message_ids: set[str], counts: ErasureCounts,
                      media: set[str]) -> None:
        stream = keys.events(ws)
        doomed: list[str] = []
        start = "-"
        while True:
            entries = await self._redis.xrange(stream, min=start, max="+", count=XRANGE_COUNT)
            for entry_id, entry in entries:
                try:
                    data = orjson.loads(entry.get("e", "{}")).get("data")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if match.in_data(data, message_ids):
                    doomed.append(entry_id)
                    media |= media_ids_in(data)
            if len(entries) < XRANGE_COUNT:
                break
            start = "(" + entries[-1][0]
        if not doomed:
            return
        groups = [g["name"] for g in await self._redis.xinfo_groups(stream)] if await self._redis.exists(stream) else []
        for i in range(0, len(doomed), 500):
            chunk = doomed[i:i + 500]
            async with self._redis.pipeline(transaction=True) as pipe:
                for group in groups:
                    pipe.xack(stream, group, *chunk)
                pipe.xdel(stream, *chunk)
                counts.events += int((await pipe.execute())[-1])

    async def _dead_letters(self, ws: str, match: SubjectMatcher, message_ids: set[str],
                            counts: ErasureCounts) -> None:
        lists = [keys.dead_letters(ws)]
        async for batch in scan_batches(self._redis, keys.endpoint_dead_letters(ws, "*")):
            lists.extend(batch)
        for name in lists:
            if await self._redis.type(name) != "list":
                continue
            for raw in await self._redis.lrange(name, 0, -1):
                try:
                    data = orjson.loads(raw).get("event", {}).get("data")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if match.in_data(data, message_ids):
                    counts.dead_letters += int(await self._redis.lrem(name, 0, raw))

    async def _markers(self, ws: str, match: SubjectMatcher, message_ids: set[str], counts: ErasureCounts) -> None:
        """WhatsApp-id mappings, Idempotency-Keys and inbound dedupe marks that name the number or point at
        an erased message."""
        for pattern in (keys.wa_message(ws, "*"), keys.idempotency(ws, "*"), keys.seen(ws, "*")):
            head = pattern[:-1]
            async for batch in scan_batches(self._redis, pattern):
                values = await self._redis.mget(batch)  # one workspace: one slot
                doomed = [name for name, value in zip(batch, values, strict=True)
                          if match.names(name[len(head):])
                          or (value is not None and value.partition("|")[0] in message_ids)]
                if doomed:
                    counts.markers += int(await self._redis.delete(*doomed))

    async def _contacts(self, ws: str, match: SubjectMatcher, counts: ErasureCounts) -> None:
        ids = match.chat_ids
        for pattern in (keys.contacts(ws, "*"),):
            async for batch in scan_batches(self._redis, pattern):
                for name in batch:
                    counts.contacts += int(await self._redis.zrem(name, *ids))
        async for batch in scan_batches(self._redis, keys.repliers(ws, "*", "*")):
            for name in batch:
                counts.contacts += int(await self._redis.srem(name, *ids))
        stamps: list[str] = []
        async for batch in scan_batches(self._redis, keys.campaign_contact(ws, "*", "*")):
            stamps.extend(n for n in batch if n.rsplit(":", 1)[-1] in ids)
        for cid in await self._redis.zrange(campaigns.list_key(ws), 0, -1):
            stamps.extend(keys.campaign_replied(ws, cid, i) for i in ids)
        if stamps:
            counts.markers += int(await self._redis.delete(*stamps))  # one workspace: one slot

    async def _campaigns(self, ws: str, match: SubjectMatcher, message_ids: set[str], counts: ErasureCounts) -> None:
        for cid in await self._redis.zrange(campaigns.list_key(ws), 0, -1):
            listed = campaigns.recipients_key(ws, cid)
            for index, raw in enumerate(await self._redis.lrange(listed, 0, -1)):
                try:
                    to = orjson.loads(raw).get("to")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if isinstance(to, str) and to and match.names(to):
                    await self._redis.lset(listed, index, _ERASED_RECIPIENT)
                    counts.campaign_recipients += 1
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.srem(campaigns.phones_key(ws, cid), match.number)
                pipe.hdel(campaigns.assignment_key(ws, cid), match.number)
                pipe.hdel(campaigns.index_key(ws, cid), match.number)
                if message_ids:  # an erased message is no longer the campaign's to move or hold
                    pipe.srem(campaigns.open_key(ws, cid), *sorted(message_ids))
                await pipe.execute()
