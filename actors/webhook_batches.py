"""Batches of an endpoint's events: up to `max_events` per POST, or whatever came within `max_wait_ms`.

Each entry's handler joins the lane's open batch and waits for the batch's outcome, so every entry is still
acknowledged by itself once its batch settled (delivered whole, or dead-lettered event by event). A batch is
retried whole and keeps its composition, hence its id, across the retries of one incarnation; after a crash its
entries are pending again and may form other batches, which is why receivers dedupe by each event's own `id`.
A failed batch's error reaches each of its handlers, whose entries then join a later batch.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wa_ray.storage.stream_consumer import Entry, Outcome
from wa_ray.storage.webhook_endpoints import BatchPolicy
from wa_ray.tasks import background

SendBatch = Callable[[str, list[Entry], list[dict[str, Any]]], Awaitable[Outcome]]


def batch_id(events: list[dict[str, Any]]) -> str:
    """The batch's `webhook-id`: a digest of its events' ids, stable while it is retried."""
    return "batch_" + hashlib.sha256(",".join(e["id"] for e in events).encode()).hexdigest()[:24]


@dataclass
class _Open:
    entries: list[Entry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    done: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BatchCollector:
    """One open batch per lane; `send(lane, entries, events)` delivers a closed one and answers its outcome."""

    def __init__(self, send: SendBatch) -> None:
        self._send = send
        self._open: dict[str, _Open] = {}

    async def add(self, lane: str, policy: BatchPolicy, entry: Entry, event: dict[str, Any]) -> Outcome:
        batch = self._open.get(lane)
        if batch is None:
            batch = self._open[lane] = _Open()
            asyncio.get_running_loop().call_later(policy.max_wait_ms / 1000, self._close, lane, batch)
        batch.entries.append(entry)
        batch.events.append(event)
        if len(batch.entries) >= policy.max_events:
            self._close(lane, batch)
        return await asyncio.shield(batch.done)

    def _close(self, lane: str, batch: _Open) -> None:
        if self._open.get(lane) is not batch:  # closed already (full before its time ran out)
            return
        del self._open[lane]
        background(self._deliver(lane, batch), f"webhook batch of {lane}")

    async def _deliver(self, lane: str, batch: _Open) -> None:
        try:
            batch.done.set_result(await self._send(lane, batch.entries, batch.events))
        except Exception as exc:  # each handler hears it and its entry tries again
            batch.done.set_exception(exc)
