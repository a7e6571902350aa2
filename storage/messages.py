"""Durable message log and the per-provider priority queues (Redis Streams).

Every state change is one Lua script, so the record, its history entry, the
queue entry and the event are written together or not at all:

* `accept` checks the Idempotency-Key, writes the message, its first history
  entry, the queue entry and `message.queued`; a 202 means all of them exist,
  and a crash can never leave a key pointing at a message that was not queued.
* `transition` moves a status forward only (a late `delivered` never rewinds
  `read`), optionally guarded by the statuses and provider it expects, and
  publishes its event in the same step.
* `reroute` is the one move back to `queued`: the failover to the other
  provider, at most once per message, acking the old queue entry atomically.

Queues: a WhatsApp Web message waits in `wa:q:{ws}:{sid}:{priority}` (read by
that session's sender); a Cloud API message in `wa:cq:{ws}:{priority}` (read by
the cloud sender). Both use the consumer group `senders`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.events import MAX_EVENTS_PER_WORKSPACE, encode
from wa_ray.storage.stream_consumer import ensure_group
from wa_ray.storage.tallies import CLOUD, DAY_TTL_S, day_of
from wa_ray.events import MESSAGE_QUEUED, Event
from wa_ray.wa_ids import is_group_id, is_lid

IDEMPOTENCY_TTL_S = 24 * 3600
WA_ID_TTL_S = 7 * 24 * 3600
MESSAGE_TTL_S = 30 * 24 * 3600

WEBJS, META = "webjs", "meta"
PROVIDERS = (WEBJS, META)
TERMINAL = frozenset({"read", "failed"})
# A late `delivered` ack must not overwrite `read`: statuses only move forward.
_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}

# Accepts, in order, as one script: the single accept is this script with one message, so the two cannot drift
# apart. KEYS: the workspace's events stream and campaign counts, then 4 per message (idempotency, record,
# history, queue); ARGV: the idempotency TTL, the events' MAXLEN and the record TTL, then 7 per message (id,
# record JSON, history entry, event, request fingerprint, '1' when it has an Idempotency-Key, campaign count
# field or ''). What every message of a call shares is sent once: a batch's 1,000 messages were 16,000 arguments
# for redis-py to pack, now 11,000 (the packing was a fifth of the Ingress's CPU in a batch; bench/results/
# experiments/accept-batch-args-20261207). Replies: {created, value} per message, flat; `value` is the new id, or
# for a repeat `first id|first fingerprint`. Kept to ACCEPT_CHUNK messages a call, so one script never holds
# Redis for long (each message is a few commands).
_ACCEPT = """
local function accept_one(k, a)
  local id, has_key = ARGV[a + 1], ARGV[a + 6] == '1'
  if has_key then
    local existing = redis.call('GET', KEYS[k + 1])
    if existing then return 0, existing end
  end
  local f = cjson.decode(ARGV[a + 2])
  local flat = {}
  for field, v in pairs(f) do flat[#flat + 1] = field; flat[#flat + 1] = v end
  redis.call('HSET', KEYS[k + 2], unpack(flat))
  redis.call('RPUSH', KEYS[k + 3], ARGV[a + 3])
  redis.call('EXPIRE', KEYS[k + 2], ARGV[3])
  redis.call('EXPIRE', KEYS[k + 3], ARGV[3])
  redis.call('XADD', KEYS[k + 4], '*', 'm', id)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[a + 4])
  if has_key then redis.call('SET', KEYS[k + 1], id .. '|' .. ARGV[a + 5], 'EX', ARGV[1]) end
  if ARGV[a + 7] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[a + 7], 1) end
  return 1, id
end
local out = {}
for i = 0, (#KEYS - 2) / 4 - 1 do
  local created, value = accept_one(2 + i * 4, 3 + i * 7)
  out[#out + 1] = created
  out[#out + 1] = value
end
return out
"""
ACCEPT_CHUNK = 100

_TRANSITION = """
local RANK = {queued=0, sending=1, sent=2, delivered=3, read=4, failed=5}
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
if ARGV[2] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then ok = true end end
  if not ok then return 0 end
elseif cur == 'read' or cur == 'failed' or RANK[cur] >= RANK[ARGV[1]] then
  return 0
end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'provider') ~= ARGV[3] then return 0 end
if ARGV[9] ~= '' and redis.call('HGET', KEYS[1], 'session_id') ~= ARGV[9] then return 0 end
local f = cjson.decode(ARGV[4])
local flat = {'status', ARGV[1]}
for k, v in pairs(f) do flat[#flat + 1] = k; flat[#flat + 1] = v end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('RPUSH', KEYS[2], ARGV[5])
if ARGV[6] ~= '' then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'e', ARGV[6]) end
local sid, prov, cmp = unpack(redis.call('HMGET', KEYS[1], 'session_id', 'provider', 'campaign'))
if prov == 'webjs' and sid and sid ~= '' then
  -- a day's `sent` counts every message that reached the server, even one whose ack overtook `sent`
  local function count(metric) redis.call('HINCRBY', KEYS[4], sid .. '|' .. metric, 1) end
  if ARGV[1] == 'failed' then count('failed') else
    for _, m in ipairs({'sent', 'delivered', 'read'}) do
      if RANK[cur] < RANK[m] and RANK[ARGV[1]] >= RANK[m] then count(m) end
    end
  end
  redis.call('EXPIRE', KEYS[4], ARGV[8])
end
if cmp and cmp ~= '' then
  local who = (prov == 'meta') and 'meta' or (sid or '')
  redis.call('HINCRBY', KEYS[5], cmp .. '|' .. who .. '|' .. cur, -1)
  redis.call('HINCRBY', KEYS[5], cmp .. '|' .. who .. '|' .. ARGV[1], 1)
end
return 1
"""

_REROUTE = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == cur then ok = true end end
if not ok then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'failover') or '0') >= 1 then return 0 end
local cmp, oldprov, oldsid = unpack(redis.call('HMGET', KEYS[1], 'campaign', 'provider', 'session_id'))
redis.call('HSET', KEYS[1], 'status', 'queued', 'provider', ARGV[1], 'session_id', ARGV[2], 'failover', '1',
           'wa_key', '', 'owner', '', 'failover_reason', ARGV[5])
if cmp and cmp ~= '' then
  local was = (oldprov == 'meta') and 'meta' or (oldsid or '')
  local now = (ARGV[1] == 'meta') and 'meta' or ARGV[2]
  redis.call('HINCRBY', KEYS[5], cmp .. '|' .. was .. '|' .. cur, -1)
  redis.call('HINCRBY', KEYS[5], cmp .. '|' .. now .. '|queued', 1)
end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[6])
if ARGV[7] ~= '' then redis.call('XACK', KEYS[4], ARGV[8], ARGV[7]) end
return 1
"""

# Queue a message again on its own provider, once per mark (a record field set to '1' here). ARGV: allowed
# statuses, provider, mark field, history entry, message id.
_REQUEUE_ONCE = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return 0 end
if redis.call('HGET', KEYS[1], 'provider') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[3]) == '1' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', ARGV[3], '1', 'owner', '')
local cmp, sid = unpack(redis.call('HMGET', KEYS[1], 'campaign', 'session_id'))
if cmp and cmp ~= '' then
  local who = (ARGV[2] == 'meta') and 'meta' or (sid or '')
  redis.call('HINCRBY', KEYS[4], cmp .. '|' .. who .. '|' .. cur, -1)
  redis.call('HINCRBY', KEYS[4], cmp .. '|' .. who .. '|queued', 1)
end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], '*', 'm', ARGV[5])
return 1
"""


@dataclass(frozen=True)
class OutboundMessage:
    """`text` is the text of a text message, the caption of a media one, "" otherwise (pacing reads its
    length); `content` is the kind's content dict (wa_ray/message_kinds.py), None for plain text."""

    message_id: str
    workspace_id: str
    session_id: str
    to: str
    text: str
    priority: str
    provider: str = WEBJS
    kind: str = "text"
    content: dict[str, Any] | None = None
    strict: bool = False  # leaves from `session_id` or not at all: no failover (may_move)
    campaign: str = ""  # the campaign it belongs to (storage/tallies.py counts it by number and status)


def content_of(record: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(kind, content dict) of a message record; a record written before kinds existed is text."""
    kind = record.get("kind") or "text"
    raw = record.get("content")
    if raw:
        return kind, orjson.loads(raw)
    return kind, {"text": record.get("text", ""), "preview_url": False}


def may_move(record: dict[str, str], to_provider: str) -> bool:
    """Whether the failover may hand a message to `to_provider`: a strict one never leaves its session, a
    group or @lid recipient is addressed by WhatsApp Web alone (the Cloud API knows phone numbers only), and a
    campaign's message never goes to the Cloud API this way: its campaign runner moves it (another number, or
    the campaign's fallback template; actors/campaign_runner.py), where the failover would send the text as
    free text, which the Cloud API refuses outside the 24 h window."""
    if record.get("strict") == "1":
        return False
    if to_provider == META and record.get("campaign"):
        return False
    return not (to_provider == META and (is_group_id(record.get("to")) or is_lid(record.get("to"))))


def fingerprint(*parts: str | None) -> str:
    """What an Idempotency-Key promises: the same key with another request is a client bug."""
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


@dataclass(frozen=True)
class Accepted:
    message_id: str
    created: bool
    same_request: bool = True  # False: the key was used before for a different message


def queue_of(ws: str, provider: str, session_id: str, priority: str) -> str:
    return keys.queue(ws, session_id, priority) if provider == WEBJS else keys.cloud_queue(ws, priority)


def history_entry(status: str, now: float, **extra: Any) -> str:
    return orjson.dumps({"status": status, "ts": now, **{k: v for k, v in extra.items() if v is not None}}).decode()


def _accepted(msg: OutboundMessage, created: Any, value: str, fp: str) -> Accepted:
    if int(created):
        return Accepted(msg.message_id, True)
    first_id, _, first_fp = value.partition("|")
    return Accepted(first_id, False, same_request=first_fp == fp)


class MessageStore:
    def __init__(self, redis: aioredis.Redis, message_ttl_s: int = MESSAGE_TTL_S, batch: Batcher | None = None) -> None:
        self._redis = redis
        self._batch = batch  # the ingress sends its accepts through it (storage/batch.py)
        self._ttl = message_ttl_s
        self._accept = redis.register_script(_ACCEPT)
        self._transition = redis.register_script(_TRANSITION)
        self._reroute = redis.register_script(_REROUTE)
        self._requeue_once = redis.register_script(_REQUEUE_ONCE)

    async def accept(self, msg: OutboundMessage, idempotency_key: str | None,
                     request_fingerprint: str | None = None, idempotency_ttl_s: int | None = None) -> Accepted:
        """Returns the message id; an idempotent repeat returns the first id and queues nothing.

        `request_fingerprint` identifies the request as the client sent it (before routing picked a
        provider or session), so a repeat of the same request matches however it was routed.
        """
        call_keys, args, fps = self._accept_call([(msg, idempotency_key, request_fingerprint)], idempotency_ttl_s)
        created, value = await self._accept(keys=call_keys, args=args, client=self._batch)  # type: ignore[arg-type]
        return _accepted(msg, created, value, fps[0])

    def start_accepts(self, items: Sequence[tuple[OutboundMessage, str | None, str | None]]
                      ) -> asyncio.Future[list[Accepted | Exception]]:
        """`accept` of each (message, Idempotency-Key, request fingerprint) of up to ACCEPT_CHUNK items of one
        workspace, in order, as one script sent now: it joins the shared pipeline at the caller's next await,
        after every chunk started before it, so chunks run in the order they were started, and a caller may
        prepare its next chunk while Redis runs this one. The future gives each item's result; when the script
        failed, each item gets its error. `load_accept_many` first: a NOSCRIPT retry would lose that order."""
        call_keys, args, fps = self._accept_call(items)
        script = asyncio.ensure_future(self._accept(keys=call_keys, args=args, client=self._batch))  # type: ignore[arg-type]

        async def results() -> list[Accepted | Exception]:
            try:
                reply = await script
            except Exception as exc:
                return [exc] * len(items)
            return [_accepted(msg, reply[2 * i], reply[2 * i + 1], fps[i]) for i, (msg, _, _) in enumerate(items)]
        # a task, not a bare coroutine: a caller that fails before it reads a started chunk leaves no warning, and
        # the chunk is accepted all the same (its items' keys make a retry repeat nothing)
        return asyncio.ensure_future(results())

    async def load_accept_many(self) -> None:
        """Make sure Redis knows the accept script. Chunks sent in an order reach Redis in that order only while
        it does: a NOSCRIPT answer makes each caller load the script and try again on its own, in whatever
        order those round trips come back (seen: a batch's queue scrambled after a Redis start)."""
        await self._redis.script_load(_ACCEPT)

    def _accept_call(self, items: Sequence[tuple[OutboundMessage, str | None, str | None]],
                     idempotency_ttl_s: int | None = None) -> tuple[list[str], list[Any], list[str]]:
        """The accept script's keys and args for (message, Idempotency-Key, request fingerprint) items of one
        workspace, and each item's request fingerprint."""
        ws = items[0][0].workspace_id
        call_keys: list[str] = [keys.events(ws), keys.campaign_counts(ws)]
        args: list[Any] = [idempotency_ttl_s or IDEMPOTENCY_TTL_S, MAX_EVENTS_PER_WORKSPACE, self._ttl]
        fps: list[str] = []
        for msg, idempotency_key, request_fingerprint in items:
            if msg.workspace_id != ws:  # the script's keys share the workspace's hash slot, and its events stream
                raise ValueError("an accept call takes the messages of one workspace")
            now = time.time()
            record = {
                "message_id": msg.message_id, "workspace_id": ws, "session_id": msg.session_id,
                "to": msg.to, "text": msg.text, "priority": msg.priority, "status": "queued",
                "provider": msg.provider, "created_at": repr(now), "failover": "0", "kind": msg.kind,
            }
            if msg.content is not None:
                record["content"] = orjson.dumps(msg.content).decode()
            if msg.strict:
                record["strict"] = "1"
            if msg.campaign:
                record["campaign"] = msg.campaign
            who = msg.session_id if msg.provider == WEBJS else CLOUD
            event = Event(MESSAGE_QUEUED, ws, msg.session_id or None,
                          {"message_id": msg.message_id, "to": msg.to, "priority": msg.priority,
                           "provider": msg.provider, "type": msg.kind}, ts=now)
            fp = request_fingerprint or fingerprint(msg.to, msg.text, msg.priority, msg.session_id)
            fps.append(fp)
            call_keys += [keys.idempotency(ws, idempotency_key or "-"), keys.message(ws, msg.message_id),
                          keys.message_history(ws, msg.message_id),
                          queue_of(ws, msg.provider, msg.session_id, msg.priority)]
            args += [msg.message_id, orjson.dumps(record).decode(), history_entry("queued", now, provider=msg.provider),
                     encode(event), fp, "1" if idempotency_key else "0",
                     f"{msg.campaign}|{who}|queued" if msg.campaign else ""]
        return call_keys, args, fps

    async def get(self, ws: str, message_id: str) -> dict[str, Any] | None:
        """The record of workspace `ws`'s message with its history; None when it has none by that id."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.message(ws, message_id))
            pipe.lrange(keys.message_history(ws, message_id), 0, -1)
            record, history = await pipe.execute()
        if not record:
            return None
        record["history"] = [orjson.loads(h) for h in history]
        return record

    async def record(self, ws: str, message_id: str) -> dict[str, str]:
        """Workspace `ws`'s message record (no history); empty when it has none by that id."""
        return await self._redis.hgetall(keys.message(ws, message_id))

    async def transition(self, message_id: str, ws: str, status: str, *, expect: tuple[str, ...] = (),
                         provider: str = "", fields: dict[str, Any] | None = None,
                         note: dict[str, Any] | None = None, event: Event | None = None,
                         session: str = "") -> bool:
        """Move a message to `status`; False when it is already at or past it (or not as expected).

        `session`: only while the record still names this session (a campaign may move a queued message to
        another number, storage/campaign_moves.py, while the sender that read it was pacing).

        `fields` go into the record, `note` only into this history entry; `event` is published
        only when the move happens, so a duplicate ack or a racing sender never doubles an event.
        """
        now = time.time()
        if event is not None:
            event.ts = now
        return bool(await self._transition(
            keys=[keys.message(ws, message_id), keys.message_history(ws, message_id), keys.events(ws),
                  keys.session_day_stats(ws, day_of(now)), keys.campaign_counts(ws)],
            args=[status, ",".join(expect), provider,
                  orjson.dumps({k: str(v) for k, v in (fields or {}).items()}).decode(),
                  history_entry(status, now, **(note or {})), encode(event) if event else "",
                  MAX_EVENTS_PER_WORKSPACE, DAY_TTL_S, session],
        ))

    async def reroute(self, message_id: str, record: dict[str, str], to_provider: str, session_id: str,
                      reason: str, allowed: tuple[str, ...] = ("queued", "sending"),
                      from_stream: str = "", entry_id: str = "") -> bool:
        """Hand a message to the other provider's queue, once per message (the failover); never one that
        may not move there (may_move)."""
        if not may_move(record, to_provider):
            return False
        ws = record["workspace_id"]
        now = time.time()
        note = history_entry("queued", now, provider=to_provider, rerouted_from=record.get("provider"),
                             reason=reason[:300])
        return bool(await self._reroute(
            keys=[keys.message(ws, message_id), keys.message_history(ws, message_id),
                  queue_of(ws, to_provider, session_id, record["priority"]),
                  from_stream or keys.message(ws, message_id),
                  keys.campaign_counts(ws)],
            args=[to_provider, session_id, ",".join(allowed), note, reason[:300], message_id, entry_id,
                  keys.QUEUE_GROUP],
        ))

    async def requeue_once(self, message_id: str, record: dict[str, str], mark: str, note: dict[str, Any],
                           allowed: tuple[str, ...] = ("sending", "sent")) -> bool:
        """Queue a message again on the provider it is on, at most once per `mark` (a record field): the
        Cloud API's fallback template for a text whose 131047 came in a status webhook. Status, mark,
        history and queue entry are one step; False when it was marked before or moved on meanwhile."""
        ws = record["workspace_id"]
        provider = record.get("provider") or WEBJS
        entry = history_entry("queued", time.time(), provider=provider, **note)
        return bool(await self._requeue_once(
            keys=[keys.message(ws, message_id), keys.message_history(ws, message_id),
                  queue_of(ws, provider, record.get("session_id", ""), record["priority"]),
                  keys.campaign_counts(ws)],
            args=[",".join(allowed), provider, mark, entry, message_id],
        ))

    async def bind_wa_id(self, ws: str, message_id: str, wa_id: str) -> None:
        await self._redis.set(keys.wa_message(ws, wa_id), message_id, ex=WA_ID_TTL_S)

    async def by_wa_id(self, ws: str, wa_id: str) -> str | None:
        """Our message of workspace `ws` with this WhatsApp id (never another workspace's)."""
        return await self._redis.get(keys.wa_message(ws, wa_id))

    async def set_media(self, ws: str, message_id: str, media_id: str) -> bool:
        """Record the media a url was fetched into on the message's content, so a retry or a failover sends
        that copy and never fetches again. The url stays beside it; False when the message is gone."""
        key = keys.message(ws, message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    record = await pipe.hgetall(key)
                    if not record:
                        return False
                    _, content = content_of(record)
                    content["media_id"] = media_id
                    pipe.multi()
                    pipe.hset(key, "content", orjson.dumps(content).decode())
                    await pipe.execute()
                    return True
                except aioredis.WatchError:
                    continue

    async def ensure_group(self, streams: list[str]) -> None:
        for stream in streams:
            await ensure_group(self._redis, stream, keys.QUEUE_GROUP)

    async def ensure_queues(self, ws: str, sid: str) -> list[str]:
        streams = [keys.queue(ws, sid, p) for p in keys.PRIORITIES]
        await self.ensure_group(streams)
        return streams
