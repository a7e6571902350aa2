"""Admission control: under overload the ingress sheds with 503 + Retry-After, fast, before doing any work.

Why: a replica that takes every request it is handed keeps them all in flight on one event loop.
Past the CPU it has, every request gets slower together (the api bench at 200 req/s saw p50 17 s),
clients time out, and what each request still holds (a Redis connection, memory) runs out: redis-py
8's pool refuses the 101st concurrent connection with MaxConnectionsError, which surfaced as HTTP
500. Refusing the excess at the door keeps the accepted requests fast and turns the rest into an
answer a client knows how to handle: `503 {"error": {"code": "overloaded", ...}}` with `Retry-After`.

A request is shed when either holds:

* `max_inflight` requests are already in flight in this replica (a hard cap), or
* the replica's event loop has lagged more than `max_lag_s` behind for all of the last `window_s`
  (a standing queue, measured by a ticker, so it sees a saturated CPU however it came about) while
  at least `min_inflight` requests are in flight. As in CoDel, the *minimum* lag over the window is
  what counts: a burst the replica clears within the window is served, not shed; a queue that stays
  is cut back at the door. A lone slow request or a GC pause (under `min_inflight`) never sheds.

Exempt: the ops routes (`/healthz`, `/readyz`, `/metrics`: probes must see the truth) and SSE streams
(`GET .../events`: long-lived, and a browser's EventSource gives up for good on a non-200 answer).

A shed request did nothing and is not audited one by one (writing to Redis per refused request is
what overload cannot afford): each second with sheds adds one audit entry (`route` "(shed)", the count
in `params`), and `/metrics` has `wa_ingress_shed_total` and `wa_ingress_inflight`.

The limits can be changed at run time, for every replica, without a redeploy: the hash
`wa:cfg:admission` (fields `max_inflight`, `max_lag_ms`, `window_ms`, `min_inflight`) is read once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.errors import error_body
from storage import keys
from storage.audit import AuditEntry, AuditLog

log = logging.getLogger(__name__)

TICK_S = 0.05
REFRESH_S = 1.0
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class Limits:
    max_inflight: int = 512
    max_lag_s: float = 0.05
    window_s: float = 0.5
    min_inflight: int = 16
    retry_after_s: int = 1

    def merged(self, fields: dict[str, str]) -> Limits:
        """These limits with the run-time overrides of `wa:cfg:admission` (malformed fields ignored)."""
        out = self
        with contextlib.suppress(ValueError, KeyError):
            out = replace(out, max_inflight=max(1, int(fields["max_inflight"])))
        with contextlib.suppress(ValueError, KeyError):
            out = replace(out, max_lag_s=max(0.001, float(fields["max_lag_ms"]) / 1000))
        with contextlib.suppress(ValueError, KeyError):
            out = replace(out, window_s=max(TICK_S, float(fields["window_ms"]) / 1000))
        with contextlib.suppress(ValueError, KeyError):
            out = replace(out, min_inflight=max(0, int(fields["min_inflight"])))
        return out


def exempt(scope: Scope) -> bool:
    path = scope["path"]
    return path in EXEMPT_PATHS or (scope["method"] == "GET" and path.startswith("/v1/") and path.endswith("/events"))


class Admission:
    """This replica's gate: what is in flight, the loop lag, the limits; `middleware` puts it in front of an app."""

    def __init__(self, redis: aioredis.Redis | None = None, audit: AuditLog | None = None,
                 limits: Limits | None = None) -> None:
        self._redis = redis
        self._audit = audit
        self.defaults = limits or Limits()
        self.limits = self.defaults
        self.inflight = 0
        self.shed_total = 0
        self._shed_unreported = 0
        self._ticks: deque[tuple[float, float]] = deque(maxlen=256)  # (loop time, lag) of recent ticks
        self._window_min: float | None = None  # least lag of the ticks within the window, as of the last tick
        self._window_start = 0.0  # when the oldest of those ran
        self._due: float | None = None  # loop time the ticker should wake at
        self._monitor: asyncio.Task[None] | None = None
        self._body = orjson.dumps(error_body(
            "overloaded", "the service is over capacity; retry after the Retry-After delay",
            {"retry_after_s": self.defaults.retry_after_s}))

    def stats(self) -> dict[str, int]:
        return {"inflight": self.inflight, "shed_total": self.shed_total}

    def standing_lag_s(self, now: float) -> float:
        """The least the loop lagged over the last window: the ticks that ran in it, plus the pending tick
        once it is later than the target (when none ran in the window, that one alone: the loop is that
        far behind; a pending tick not yet that late could still turn out punctual, so it does not count).
        The ticks' part is computed once per tick (`_tick`), so a request pays O(1) here."""
        lim = self.limits
        lags = []
        if self._window_min is not None and now - self._window_start <= lim.window_s:
            lags.append(self._window_min)
        if self._due is not None and now - self._due > lim.max_lag_s:
            lags.append(now - self._due)
        return min(lags) if lags else 0.0

    def overloaded(self, now: float) -> bool:
        lim = self.limits
        if self.inflight >= lim.max_inflight:
            return True
        return self.inflight >= lim.min_inflight and self.standing_lag_s(now) > lim.max_lag_s

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """For `app.add_middleware(gate.middleware)`: Starlette calls it with the app it wraps."""
        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or exempt(scope):
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            if self._monitor is None or self._monitor.done():
                self._monitor = loop.create_task(self._watch(), name="ingress-admission")
            if self.overloaded(loop.time()):
                self.shed_total += 1
                self._shed_unreported += 1
                await self._shed(send)
                return
            self.inflight += 1
            try:
                await app(scope, receive, send)
            finally:
                self.inflight -= 1

        return admit

    async def _shed(self, send: Send) -> None:
        retry = str(self.limits.retry_after_s).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self._body)).encode()), (b"retry-after", retry)]})
        await send({"type": "http.response.body", "body": self._body})

    async def _watch(self) -> None:
        await asyncio.gather(self._tick(), self._refresh_loop())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self._ticks.append((now, max(0.0, now - self._due)))
            since = now - self.limits.window_s
            while self._ticks and self._ticks[0][0] < since:
                self._ticks.popleft()
            self._window_min = min(lag for _, lag in self._ticks)
            self._window_start = self._ticks[0][0]

    async def _refresh_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # bookkeeping must never stop the loop (Redis down: keep limits)
                await self._refresh()
            await asyncio.sleep(REFRESH_S)

    async def _refresh(self) -> None:
        shed, self._shed_unreported = self._shed_unreported, 0
        if shed:
            log.warning("overloaded: shed %d requests in the last second (%d in flight, standing loop lag %.0f ms)",
                        shed, self.inflight, self.standing_lag_s(asyncio.get_running_loop().time()) * 1000)
            if self._audit is not None:
                await self._audit.record(AuditEntry(
                    ts=time.time(), who="anonymous", role=None, method="*", route="(shed)", path="*",
                    workspace_id=None, status=503, outcome="shed", request_id="", params={"count": str(shed)}))
        if self._redis is not None:
            fields: dict[str, Any] = await self._redis.hgetall(keys.admission())
            self.limits = self.defaults.merged(fields) if fields else self.defaults
