"""A workspace's webhook endpoints: several per workspace, each with its own subscriptions, headers and batching.

The first webhook form (`keys.webhook(ws)`, storage/webhooks.py) stays what it was: one target reading the
event stream directly. An endpoint instead has a queue of its own (`keys.webhook_queue`), filled by the
dispatcher's fan-out from the event stream with a copy of each event it subscribes to, and read through the
same consumer group name (`webhooks`), so one blocking read still covers every lane. A slow or dead endpoint
therefore holds up only its own queue, and its dead letters and replay are its own.

Invariants:

* the secret and the custom headers (which may carry a receiver's credentials) are sealed together, bound to
  the workspace, the endpoint and its URL (`sealed_aad`): a record copied elsewhere or a URL edited in Redis
  fails to open and nothing is delivered; neither is ever returned by a read;
* at most `MAX_ENDPOINTS` per workspace, checked and written in one script, so concurrent creates cannot pass
  the bound;
* an endpoint's queue and consumer group exist before its lane, and its lane before its record: the
  dispatcher never sees a lane without its group, and a lane without a record (being created, refused at the
  bound, or being deleted) only drops what it holds; deleting removes the record first, so an entry still in
  flight finds no endpoint and is dropped;
* the lanes (`keys.webhook_endpoint_lanes`, `{g:wh}`) and the records (the workspace's slot) are written in
  separate single-slot steps: a lane is added before its record and removed after it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.crypto import MasterKey, decrypt, encrypt
from wa_ray.storage import keys
from wa_ray.storage.stream_consumer import ensure_group

PURPOSE = "webhook-endpoints"
MAX_ENDPOINTS = 10
MAX_HEADERS = 10
ALL = "*"
_OPENED_MAX = 4096

# Header names a tenant may not set: ours (the signature and event headers a receiver trusts) and those
# HTTP itself owns. Compared lowercased; `webhook-` and `x-event-` are reserved as prefixes.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "connection",
    "keep-alive", "te", "trailer", "upgrade", "expect", "proxy-authorization", "proxy-connection",
    "x-signature", "x-timestamp", "x-workspace-id", "x-batch-size", "user-agent", "cookie",
})
RESERVED_PREFIXES = ("webhook-", "x-event-", "proxy-")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")  # fullmatch: `$` would pass a trailing newline
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")

# KEYS: the lanes set, the lanes version ({g:wh}). ARGV: the lane. Returns the lanes version the dispatcher
# must reach before it copies events to the new endpoint (bumped at every create: the lane step cannot see
# whether the workspace had endpoints already, and a bump costs at most the dispatcher's next lanes read).
_ADD_LANE = """
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('INCR', KEYS[2])
"""
# KEYS: the workspace's endpoints. ARGV: id, record, MAX_ENDPOINTS. 0: at the bound (nothing written).
_CREATE = """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
_UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def header_problem(name: str, value: str) -> str | None:
    """Why a custom header cannot be sent (never quoting it), or None when it can."""
    lowered = name.lower()
    if not _HEADER_NAME.fullmatch(name):
        return "a header name must be 1-64 token characters"
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        return "a header of the delivery itself or of HTTP cannot be set"
    if not _HEADER_VALUE.fullmatch(value):
        return "a header value must be at most 1024 printable ASCII characters"
    return None


def pattern_problem(pattern: str, known: frozenset[str]) -> str | None:
    """An event subscription is `*`, a known event type, or a known type's prefix followed by `.*`."""
    if pattern == ALL or pattern in known:
        return None
    if pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in known):
        return None
    return "not a known event type, `<prefix>.*` or `*`"


def subscribed(patterns: Sequence[str], event_type: str) -> bool:
    return any(p == ALL or p == event_type or (p.endswith(".*") and event_type.startswith(p[:-1]))
               for p in patterns)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class BatchPolicy:
    """Deliver up to `max_events` events in one POST, waiting at most `max_wait_ms` for the batch to fill."""

    max_events: int
    max_wait_ms: int


@dataclass(frozen=True)
class Endpoint:
    """What may be shown of an endpoint: everything but the secret and the header values."""

    id: str
    url: str
    events: tuple[str, ...]
    header_names: tuple[str, ...]
    batch: BatchPolicy | None
    description: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events), "header_names": list(self.header_names),
                "batch": None if self.batch is None else self.batch.__dict__, "description": self.description,
                "created_at": self.created_at}


@dataclass(frozen=True)
class EndpointTarget:
    """An endpoint opened for delivery."""

    ws: str
    endpoint: Endpoint
    secret: str
    headers: dict[str, str] = field(default_factory=dict)


def endpoint_of(endpoint_id: str, rec: dict[str, Any]) -> Endpoint:
    """The endpoint in a stored record (decoded JSON of its field in `keys.webhook_endpoints(ws)`): the one
    reader of that format, the dispatcher's fan-out included."""
    batch = rec.get("batch")
    return Endpoint(endpoint_id, rec["url"], tuple(rec["events"]), tuple(rec["header_names"]),
                    None if batch is None else BatchPolicy(int(batch["max_events"]), int(batch["max_wait_ms"])),
                    rec.get("description", ""), float(rec["created_at"]))


def sealed_aad(ws: str, endpoint: str, url: str) -> bytes:
    return f"webhook-endpoint:{ws}:{endpoint}:{url}".encode()


class EndpointLimit(Exception):
    """The workspace has MAX_ENDPOINTS endpoints already."""


class WebhookEndpointStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive(PURPOSE))
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        self._add_lane = redis.register_script(_ADD_LANE)
        self._create = redis.register_script(_CREATE)
        self._update = redis.register_script(_UPDATE)
        # Sealed blobs opened, by (blob, associated data): the dispatcher opens an endpoint at every delivery.
        # A changed record is a new blob, opened afresh; bounded, cleared when full.
        self._opened: dict[tuple[str, bytes], dict[str, Any]] = {}

    # ------------------------------------------------------------------ writes
    async def create(self, ws: str, url: str, secret: str, events: Sequence[str], headers: dict[str, str],
                     batch: BatchPolicy | None, description: str, seen_within_s: float = 0.0) -> Endpoint:
        """The endpoint made; with `seen_within_s`, returns once the dispatcher copies the workspace's events
        to it (or after that long, when no dispatcher answers: its next incarnation reads the lanes first)."""
        endpoint = Endpoint("we_" + secrets.token_hex(8), url, tuple(events), tuple(sorted(headers)), batch,
                            description, round(time.time(), 3))
        # from now on: earlier events are not replayed into it
        await ensure_group(self._redis, keys.events(ws), keys.WEBHOOK_GROUP, "$")
        await ensure_group(self._redis, keys.webhook_queue(ws, endpoint.id), keys.WEBHOOK_GROUP)
        await self._redis.sadd(keys.webhook_workspaces(), ws)
        record = self._record(ws, endpoint, secret, headers)
        lane = f"{ws}/{endpoint.id}"
        version = int(await self._add_lane(keys=[keys.webhook_endpoint_lanes(), keys.webhook_lanes_version()],
                                           args=[lane]))
        if not await self._create(keys=[keys.webhook_endpoints(ws)], args=[endpoint.id, record, MAX_ENDPOINTS]):
            await self._redis.srem(keys.webhook_endpoint_lanes(), lane)
            await self._redis.delete(keys.webhook_queue(ws, endpoint.id))
            raise EndpointLimit
        deadline = time.monotonic() + seen_within_s
        while time.monotonic() < deadline and int(await self._redis.get(keys.webhook_lanes_seen()) or 0) < version:
            await asyncio.sleep(0.05)
        return endpoint

    async def update(self, ws: str, endpoint_id: str, changes: dict[str, Any]) -> Endpoint | None:
        """Apply `changes` (url, secret, events, headers, batch, description; a key absent is kept, `batch`
        None turns batching off); None when there is no such endpoint."""
        current = await self.target(ws, endpoint_id)
        if current is None:
            return None
        e = current.endpoint
        headers = changes.get("headers", current.headers)
        batch = changes["batch"] if "batch" in changes else e.batch
        endpoint = Endpoint(e.id, changes.get("url", e.url), tuple(changes.get("events", e.events)),
                            tuple(sorted(headers)), batch, changes.get("description", e.description), e.created_at)
        record = self._record(ws, endpoint, changes.get("secret", current.secret), headers)
        if not await self._update(keys=[keys.webhook_endpoints(ws)], args=[endpoint_id, record]):
            return None
        return endpoint

    async def delete(self, ws: str, endpoint_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:  # the workspace's slot
            pipe.hdel(keys.webhook_endpoints(ws), endpoint_id)
            pipe.delete(keys.webhook_queue(ws, endpoint_id), keys.endpoint_dead_letters(ws, endpoint_id),
                        keys.endpoint_replay(ws, endpoint_id))
            removed = (await pipe.execute())[0]
        await self._redis.srem(keys.webhook_endpoint_lanes(), f"{ws}/{endpoint_id}")  # after: see the invariants
        return bool(removed)

    # ------------------------------------------------------------------- reads
    async def endpoints(self, ws: str) -> list[Endpoint]:
        raw = await self._redis.hgetall(keys.webhook_endpoints(ws))
        return sorted((endpoint_of(eid, orjson.loads(rec)) for eid, rec in raw.items()),
                      key=lambda e: (e.created_at, e.id))

    async def get(self, ws: str, endpoint_id: str) -> Endpoint | None:
        raw = await self._redis.hget(keys.webhook_endpoints(ws), endpoint_id)
        return None if raw is None else endpoint_of(endpoint_id, orjson.loads(raw))

    async def target(self, ws: str, endpoint_id: str) -> EndpointTarget | None:
        return self.target_of(ws, endpoint_id, await self._redis.hget(keys.webhook_endpoints(ws), endpoint_id))

    def target_of(self, ws: str, endpoint_id: str, raw: str | None) -> EndpointTarget | None:
        """The endpoint in a stored record (HGET of `keys.webhook_endpoints(ws)`, read by the caller)."""
        if raw is None:
            return None
        rec = orjson.loads(raw)
        endpoint = endpoint_of(endpoint_id, rec)
        opened = (rec["sealed"], sealed_aad(ws, endpoint_id, endpoint.url))
        inner = self._opened.get(opened)
        if inner is None:
            inner = orjson.loads(decrypt(self._readers, bytes.fromhex(opened[0]), opened[1]))
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[opened] = inner
        return EndpointTarget(ws, endpoint, inner["secret"], dict(inner["headers"]))

    # ----------------------------------------------------------------- helpers
    def _record(self, ws: str, endpoint: Endpoint, secret: str, headers: dict[str, str]) -> str:
        sealed = encrypt(self._key, orjson.dumps({"secret": secret, "headers": headers}),
                         sealed_aad(ws, endpoint.id, endpoint.url))
        public = endpoint.public()
        del public["id"]
        return orjson.dumps({**public, "sealed": sealed.hex()}).decode()
