"""Campaigns in Redis: the entity, its recipients, each recipient's number, the runner's cursor.

Everything the runner (actors/campaign_runner.py) knows lives here, so a restarted runner simply runs
the next step again:

* `wa:{ws}:cmp:{cid}` hash: name, status, times, the message (kind + content JSON), the fallback
  template's content JSON ("" without one), the numbers ("all" or a JSON list), the schedule JSON,
  priority, `total` recipients and `cursor`, the index of the next recipient to feed (only ever raised:
  `advance` is a max).
* `wa:{ws}:cmp-rcp:{cid}` list: recipient i is `{"to", "v": {variables}}` at index i; `wa:{ws}:cmp-phones:{cid}`
  set: the campaign's phones, so a phone is a recipient once.
* `wa:{ws}:cmp-asg:{cid}` hash: phone -> the number it is assigned to (sticky for the campaign).
* `wa:{ws}:cmp-idx:{cid}` hash: phone -> its recipient index, written as it is fed (the runner renders a
  fallback template for a message from its recipient's variables).
* `wa:{ws}:cmp-open:{cid}` set: message ids that may still be queued (the ones a pause, a lost number
  or a cancel may move); pruned once they are past `sending`.
* `wa:{ws}:cmp-list` zset of campaign ids by creation time; `wa:cmp-active` (global) set of `ws/cid` the
  runner works on (started, not finished).

Status moves are one Lua step each (`set_status` checks the status it moves from), so the API and the
runner never overwrite each other's decision. Every script and transaction stays in the workspace's slot:
the global `wa:cmp-active` is written beside them, a member added before a move that starts a campaign and
removed after a delete, so at worst it names a campaign the runner has nothing to do for (a draft whose
start was refused, a deleted one); the runner reads the campaign and skips it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys

MAX_RECIPIENTS = 100_000
DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED = (
    "draft", "scheduled", "running", "paused", "completed", "cancelled")
FINISHED = frozenset({COMPLETED, CANCELLED})
CAMPAIGN_TTL_S = 35 * 24 * 3600  # the idempotency keys of its messages live as long (MessageStore.accept)


def _k(kind: str, ws: str, cid: str) -> str:
    return f"{keys.workspace_prefix(ws)}{kind}:{cid}"


def meta_key(ws: str, cid: str) -> str:
    return _k("cmp", ws, cid)


def recipients_key(ws: str, cid: str) -> str:
    return _k("cmp-rcp", ws, cid)


def phones_key(ws: str, cid: str) -> str:
    return _k("cmp-phones", ws, cid)


def assignment_key(ws: str, cid: str) -> str:
    return _k("cmp-asg", ws, cid)


def open_key(ws: str, cid: str) -> str:
    return _k("cmp-open", ws, cid)


def index_key(ws: str, cid: str) -> str:
    return _k("cmp-idx", ws, cid)


def list_key(ws: str) -> str:
    return f"{keys.workspace_prefix(ws)}cmp-list"


ACTIVE = f"{keys.PREFIX}:cmp-active"

# KEYS: meta. ARGV: allowed from-statuses (comma list), to-status, now.
_SET_STATUS = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == cur then ok = true end end
if not ok then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if (ARGV[2] == 'running' or ARGV[2] == 'scheduled') and not redis.call('HGET', KEYS[1], 'started_at') then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[3])
end
if ARGV[2] == 'completed' or ARGV[2] == 'cancelled' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
end
return {1, cur}
"""

# KEYS: meta, recipients list, phones set. ARGV: max total, then JSON recipients.
# All or nothing: a phone already in the campaign (or twice in the batch) refuses the batch with its index.
_ADD = """
if redis.call('HGET', KEYS[1], 'status') ~= 'draft' then return {-1, 0} end
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local batch = cjson.decode(ARGV[2])
if total + #batch > tonumber(ARGV[1]) then return {-2, total} end
local seen = {}
for i, r in ipairs(batch) do
  if seen[r.to] or redis.call('SISMEMBER', KEYS[3], r.to) == 1 then return {-3, i} end
  seen[r.to] = true
end
for _, r in ipairs(batch) do
  redis.call('SADD', KEYS[3], r.to)
  redis.call('RPUSH', KEYS[2], cjson.encode(r))
end
redis.call('HSET', KEYS[1], 'total', total + #batch)
return {1, total + #batch}
"""

_ADVANCE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'cursor', ARGV[1]) end
return 1
"""


@dataclass(frozen=True)
class Recipient:
    to: str
    variables: dict[str, str] = field(default_factory=dict)

    def encode(self) -> dict[str, Any]:
        return {"to": self.to, "v": self.variables or {}}


@dataclass
class Campaign:
    campaign_id: str
    workspace_id: str
    name: str
    status: str
    created_at: float
    kind: str
    content: dict[str, Any]
    numbers: list[str] | None  # None: every connected number of the workspace
    schedule: dict[str, Any] | None
    priority: str
    total: int = 0
    cursor: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    waiting: str = ""  # "", "schedule", "plan_limit", "numbers"
    fallback: dict[str, Any] | None = None  # a template's content: the Cloud API's copy for a lost number's recipient

    @classmethod
    def from_record(cls, r: dict[str, str]) -> Campaign:
        numbers = orjson.loads(r["numbers"])
        return cls(
            campaign_id=r["campaign_id"], workspace_id=r["workspace_id"], name=r["name"], status=r["status"],
            created_at=float(r["created_at"]), kind=r["kind"], content=orjson.loads(r["content"]),
            numbers=None if numbers == "all" else list(numbers),
            schedule=orjson.loads(r["schedule"]) if r.get("schedule") else None, priority=r["priority"],
            total=int(r.get("total") or 0), cursor=int(r.get("cursor") or 0),
            started_at=float(r["started_at"]) if r.get("started_at") else None,
            finished_at=float(r["finished_at"]) if r.get("finished_at") else None, waiting=r.get("waiting", ""),
            fallback=orjson.loads(r["fallback"]) if r.get("fallback") else None)


class CampaignStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._set_status = redis.register_script(_SET_STATUS)
        self._add = redis.register_script(_ADD)
        self._advance = redis.register_script(_ADVANCE)

    async def create(self, c: Campaign) -> None:
        record = {
            "campaign_id": c.campaign_id, "workspace_id": c.workspace_id, "name": c.name, "status": c.status,
            "created_at": repr(c.created_at), "kind": c.kind, "content": orjson.dumps(c.content).decode(),
            "numbers": orjson.dumps("all" if c.numbers is None else c.numbers).decode(),
            "schedule": orjson.dumps(c.schedule).decode() if c.schedule else "", "priority": c.priority,
            "total": 0, "cursor": 0, "fallback": orjson.dumps(c.fallback).decode() if c.fallback else "",
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(meta_key(c.workspace_id, c.campaign_id), mapping=record)
            pipe.zadd(list_key(c.workspace_id), {c.campaign_id: c.created_at})
            await pipe.execute()

    async def get(self, ws: str, cid: str) -> Campaign | None:
        r = await self._redis.hgetall(meta_key(ws, cid))
        return Campaign.from_record(r) if r and r.get("workspace_id") == ws else None

    async def list(self, ws: str, limit: int = 100) -> list[Campaign]:
        cids = await self._redis.zrevrange(list_key(ws), 0, limit - 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for cid in cids:
                pipe.hgetall(meta_key(ws, cid))
            records = await pipe.execute()
        return [Campaign.from_record(r) for r in records if r]

    async def add_recipients(self, ws: str, cid: str, batch: list[Recipient]) -> tuple[int, int]:
        """(code, n): (1, new total), (-1, 0) not a draft, (-2, total) over MAX_RECIPIENTS, (-3, i) the i-th
        (1-based) of the batch is a phone the campaign has already."""
        code, n = await self._add(keys=[meta_key(ws, cid), recipients_key(ws, cid), phones_key(ws, cid)],
                                  args=[MAX_RECIPIENTS, orjson.dumps([r.encode() for r in batch]).decode()])
        return int(code), int(n)

    async def recipients(self, ws: str, cid: str, start: int, count: int) -> list[Recipient]:
        raw = await self._redis.lrange(recipients_key(ws, cid), start, start + count - 1)
        out = []
        for item in raw:
            r = orjson.loads(item)
            out.append(Recipient(r["to"], r.get("v") or {}))
        return out

    async def set_status(self, ws: str, cid: str, allowed: tuple[str, ...], to: str) -> tuple[bool, str]:
        """(moved, the status it was in); the move happens only from one of `allowed`.

        A move to scheduled or running indexes the campaign for the runner first, and leaves the member when
        the move is refused: removing it could undo the index of a concurrent move that did start it."""
        if to in (SCHEDULED, RUNNING):
            await self._redis.sadd(ACTIVE, f"{ws}/{cid}")
        moved, was = await self._set_status(keys=[meta_key(ws, cid)], args=[",".join(allowed), to, repr(time.time())])
        return bool(int(moved)), was or ""

    async def set_waiting(self, ws: str, cid: str, waiting: str) -> None:
        await self._redis.hset(meta_key(ws, cid), "waiting", waiting)

    async def advance(self, ws: str, cid: str, cursor: int) -> None:
        await self._advance(keys=[meta_key(ws, cid)], args=[cursor])

    async def assignments(self, ws: str, cid: str, phones: list[str]) -> dict[str, str]:
        if not phones:
            return {}
        values = await self._redis.hmget(assignment_key(ws, cid), phones)
        return {p: v for p, v in zip(phones, values, strict=True) if v}

    async def assign(self, ws: str, cid: str, phone: str, sid: str) -> None:
        await self._redis.hset(assignment_key(ws, cid), phone, sid)

    async def note_index(self, ws: str, cid: str, phone: str, index: int) -> None:
        await self._redis.hset(index_key(ws, cid), phone, index)

    async def recipient_of(self, ws: str, cid: str, phone: str) -> Recipient:
        """The recipient fed with this phone (its variables); no variables when it was fed without a note."""
        index = await self._redis.hget(index_key(ws, cid), phone)
        if index is not None:
            found = await self.recipients(ws, cid, int(index), 1)
            if found and found[0].to == phone:
                return found[0]
        return Recipient(phone)

    async def open_messages(self, ws: str, cid: str) -> list[str]:
        return list(await self._redis.smembers(open_key(ws, cid)))

    async def add_open(self, ws: str, cid: str, message_id: str) -> None:
        await self._redis.sadd(open_key(ws, cid), message_id)

    async def close_open(self, ws: str, cid: str, message_ids: list[str]) -> None:
        if message_ids:
            await self._redis.srem(open_key(ws, cid), *message_ids)

    async def active(self) -> list[tuple[str, str]]:
        return [tuple(m.split("/", 1)) for m in await self._redis.smembers(ACTIVE)]  # type: ignore[misc]

    async def deactivate(self, ws: str, cid: str) -> None:
        await self._redis.srem(ACTIVE, f"{ws}/{cid}")

    async def delete(self, ws: str, cid: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:  # the workspace's slot
            for key in (meta_key(ws, cid), recipients_key(ws, cid), phones_key(ws, cid), assignment_key(ws, cid),
                        open_key(ws, cid), index_key(ws, cid)):
                pipe.delete(key)
            pipe.zrem(list_key(ws), cid)
            await pipe.execute()
        await self._redis.srem(ACTIVE, f"{ws}/{cid}")


NUMBER_STATUSES = ("queued", "sent", "delivered", "read", "failed", "replied")


def summarize(c: Campaign, counts: dict[str, dict[str, int]]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(totals, per number) from the campaign and its `wa:cmp-n` counts (tallies.campaign_counts).

    A message `sending` counts as queued; held ones (paused, or waiting for a number) and recipients not fed
    yet are `pending`; cancelled ones and, once cancelled, the unfed recipients are `cancelled`."""
    from wa_ray.storage.campaign_moves import CANCELLED as CANCELLED_BUCKET, HELD

    numbers: dict[str, dict[str, int]] = {}
    totals = {"recipients": c.total, "pending": 0, "queued": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0,
              "replied": 0, "cancelled": 0}
    for who, by_status in counts.items():
        if who == HELD:
            totals["pending"] += by_status.get("queued", 0)
            continue
        if who == CANCELLED_BUCKET:
            totals["cancelled"] += by_status.get("failed", 0)
            continue
        row = {s: by_status.get(s, 0) for s in NUMBER_STATUSES}
        row["queued"] += by_status.get("sending", 0)
        row["assigned"] = sum(row[s] for s in NUMBER_STATUSES if s != "replied")
        numbers[who] = row
        for s in NUMBER_STATUSES:
            totals[s] += row[s]
    unfed = max(0, c.total - c.cursor)
    totals["cancelled" if c.status == CANCELLED else "pending"] += unfed
    return totals, numbers
