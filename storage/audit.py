"""The audit stream: one entry per authenticated mutating call (who, what, when, outcome).

A Redis stream, so entries are ordered, ids are timestamps, and any replica
can append. Bodies are never recorded (they carry webhook secrets and message
text); the route, its path parameters and the outcome are.

`record` returns once the entry is in Redis, but the entries of concurrent
calls are written together (storage/batch.py: whatever arrived while the
previous batch was on the wire goes in one pipeline), so at a few hundred
requests per second the audit costs a share of a round trip, not one per call.

A call refused before its caller was authenticated (no credential, a bad
signature, a replayed nonce) goes to a stream of its own, capped much lower:
anyone can send those, so they must never push the real entries out of the
main stream's window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.batch import Batcher
from wa_ray.storage.events import STREAM_ID_PATTERN

MAX_ENTRIES = 200_000  # approximate cap; older entries fall off
MAX_ANONYMOUS_ENTRIES = 10_000
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
_MAX = 2**64


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    who: str  # "key:{id}", "console:{issuer}", or "anonymous" (with the claimed key id in `claimed_key`)
    role: str | None
    method: str
    route: str  # the route template, e.g. /v1/workspaces/{ws}/sessions
    path: str
    workspace_id: str | None
    status: int
    outcome: str  # ok | denied | rate_limited | rejected | error | shed (a per-second summary of 503 overloaded)
    request_id: str
    client: str | None = None
    claimed_key: str | None = None
    params: dict[str, str] | None = None
    reason: str | None = None  # why a call was refused, when the route says (e.g. ip_not_allowed)


# Path parameters that are personal data (a data subject's phone number): an entry keeps only their last two
# characters, enough for an operator to tell two erasures apart, never enough to find the person.
REDACTED_PARAMS = frozenset({"number"})


def redacted(value: str) -> str:
    return "**" + value[-2:] if len(value) > 4 else "**"


def redact_params(route: str | None, path: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(path, params) with REDACTED_PARAMS redacted; the path is rebuilt from the route template so the
    value appears nowhere in the entry (a route without such a parameter is returned unchanged)."""
    if not REDACTED_PARAMS & params.keys():
        return path, params
    safe = {k: redacted(v) if k in REDACTED_PARAMS else v for k, v in params.items()}
    try:
        rebuilt = route.format(**safe) if route else "(redacted)"
    except (KeyError, IndexError, ValueError):
        rebuilt = "(redacted)"
    return rebuilt, safe


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 429:
        return "rate_limited"
    if status < 500:
        return "rejected"
    return "error"


class AuditLog:
    def __init__(self, redis: aioredis.Redis, batch: Batcher | None = None) -> None:
        self._redis = redis
        self._batch = batch or Batcher(redis)

    async def record(self, entry: AuditEntry) -> str:
        """Append one entry; returns its stream id once it is written (raises what Redis raised)."""
        # orjson writes a dataclass as dataclasses.asdict would, without asdict's deep copy
        return await self._batch.xadd(keys.audit(), {"e": orjson.dumps(entry).decode()}, maxlen=MAX_ENTRIES,
                                      approximate=True)

    async def record_anonymous(self, entry: AuditEntry) -> str:
        """Append a call refused before authentication to its own capped stream."""
        return await self._batch.xadd(keys.audit_anonymous(), {"e": orjson.dumps(entry).decode()},
                                      maxlen=MAX_ANONYMOUS_ENTRIES, approximate=True)

    async def page(self, *, before: str | None = None, limit: int = 100, workspace_id: str | None = None,
                   who: str | None = None, scan_limit: int = 5000,
                   anonymous: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. Returns (entries, cursor for the next older page or None).

        `anonymous` pages the stream of calls refused before authentication instead.

        Filters are applied over at most `scan_limit` entries per call so a filter that matches
        nothing cannot turn one request into a full scan of the stream.
        """
        end = _before(before) if before else "+"
        if end is None:
            return [], None  # nothing is older than the first possible id
        stream = keys.audit_anonymous() if anonymous else keys.audit()
        out: list[dict[str, Any]] = []
        scanned, cursor = 0, None
        while len(out) < limit and scanned < scan_limit:
            batch = await self._redis.xrevrange(stream, max=end, min="-", count=min(500, scan_limit - scanned))
            if not batch:
                return out, None
            for entry_id, fields in batch:
                scanned += 1
                cursor = entry_id
                record = orjson.loads(fields["e"])
                if workspace_id and record.get("workspace_id") != workspace_id:
                    continue
                if who and record.get("who") != who:
                    continue
                out.append({"id": entry_id, **record})
                if len(out) >= limit:
                    break
            end = _before(cursor) or "-"
            if end == "-":
                return out, None
        return out, cursor


def _before(entry_id: str) -> str | None:
    """The id just before `entry_id` (an inclusive XREVRANGE end), None when there is none.

    Computed rather than written as "(id": Redis refuses "(0-0", and ids past 2^64 are refused
    before they reach Redis."""
    if not _STREAM_ID.fullmatch(entry_id):
        return None
    ms, seq = (int(p) for p in entry_id.split("-"))
    if ms >= _MAX or seq >= _MAX:
        return f"{_MAX - 1}-{_MAX - 1}" if ms >= _MAX else f"{ms}-{_MAX - 1}"
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{_MAX - 1}" if ms else None
