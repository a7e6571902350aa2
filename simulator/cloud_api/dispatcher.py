"""Signed webhook delivery with bounded exponential-backoff retries.

Each webhook is encoded once; every attempt (and the duplicate copy, when that
chaos switch is on) sends the identical bytes with the identical signature, as
Meta's retries do. Success is HTTP 200 and nothing else - Meta asks callbacks
to "return 200 OK" - so a callback answering 204 or 500 is retried.

Retry schedule: attempt 1 at once, then base * 2**(n-1) seconds (capped),
up to `max_attempts`; afterwards the delivery is recorded as `gave_up`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from wa_ray.simulator.cloud_api.config import WebhookConfig
from wa_ray.simulator.cloud_api.signing import (
    LEGACY_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    encode_meta_json,
    signature_256,
    signature_sha1,
)

USER_AGENT = "facebookexternalua"
MAX_CONCURRENT_DELIVERIES = 64
DELIVERY_HISTORY = 20_000


@dataclass
class Attempt:
    at: float
    status_code: int | None
    error: str | None = None


@dataclass
class Delivery:
    id: int
    kind: str  # "status" | "message"
    wamid: str
    status: str | None
    url: str
    copy: int  # 1; 2 for the duplicate copy
    payload: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"  # "pending" | "delivered" | "gave_up"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "wamid": self.wamid,
            "status": self.status,
            "url": self.url,
            "copy": self.copy,
            "outcome": self.outcome,
            "attempts": [a.__dict__ for a in self.attempts],
            "payload": self.payload,
        }


@dataclass(frozen=True)
class _Policy:
    url: str
    secret: str | None
    max_attempts: int
    base_delay: float
    max_delay: float
    timeout: float
    copies: int


class WebhookDispatcher:
    def __init__(self, config: Callable[[], WebhookConfig]):
        self._config = config
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()  # history is read from test threads
        self._history: deque[Delivery] = deque(maxlen=DELIVERY_HISTORY)
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created lazily inside the server's event loop.
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": USER_AGENT})
        return self._client

    def submit(self, payload: dict[str, Any], *, kind: str, wamid: str, status: str | None) -> bool:
        """Queue a webhook; False when no callback is configured (dropped)."""
        cfg = self._config()
        if not cfg.callback_url:
            return False
        # Snapshot the policy: a delivery in flight keeps the URL and secret it
        # started with, even if the control API changes them meanwhile.
        policy = _Policy(
            url=cfg.callback_url,
            secret=cfg.app_secret,
            max_attempts=max(1, cfg.max_attempts),
            base_delay=cfg.retry_base_delay,
            max_delay=cfg.retry_max_delay,
            timeout=cfg.timeout,
            copies=2 if cfg.duplicates else 1,
        )
        task = asyncio.get_running_loop().create_task(self._run(payload, policy, kind, wamid, status))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, payload: dict[str, Any], policy: _Policy, kind: str, wamid: str, status: str | None) -> None:
        body = encode_meta_json(payload)
        headers = {"Content-Type": "application/json"}
        if policy.secret:
            headers[SIGNATURE_HEADER] = signature_256(body, policy.secret)
            headers[LEGACY_SIGNATURE_HEADER] = signature_sha1(body, policy.secret)
        for copy in range(1, policy.copies + 1):
            delivery = Delivery(next(self._ids), kind, wamid, status, policy.url, copy, payload)
            with self._lock:
                self._history.append(delivery)
            await self._deliver(delivery, body, headers, policy)

    async def _deliver(self, delivery: Delivery, body: bytes, headers: dict[str, str], policy: _Policy) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        for attempt in range(1, policy.max_attempts + 1):
            async with self._slots:
                try:
                    response = await self.client.post(policy.url, content=body, headers=headers, timeout=policy.timeout)
                    result = Attempt(time.time(), response.status_code)
                except httpx.HTTPError as exc:
                    result = Attempt(time.time(), None, f"{type(exc).__name__}: {exc}")
            delivery.attempts.append(result)
            if result.status_code == 200:
                delivery.outcome = "delivered"
                return
            if attempt < policy.max_attempts:
                await asyncio.sleep(min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))
        delivery.outcome = "gave_up"

    def history(self, wamid: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self._history if wamid is None or d.wamid == wamid]

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        with self._lock:
            self._history.clear()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
