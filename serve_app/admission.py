"""Admission control: under overload the ingress sheds with 503 + Retry-After, fast, before doing any work.

Why: a replica that takes every request it is handed keeps them all in flight on one event loop.
Past the CPU it has, every request gets slower together (the api bench at 200 req/s saw p50 17 s),
clients time out, and what each request still holds (a Redis connection, memory) runs out: redis-py
8's pool refuses the 101st concurrent connection with MaxConnectionsError, which surfaced as HTTP
500. Refusing the excess at the door keeps the accepted requests fast and turns the rest into an
answer a client knows how to handle: `503 {"error": {"code": "overloaded", ...}}` with `Retry-After`.

A request is shed when any of these holds:

* `max_inflight` requests are already in flight in this replica (a hard cap);
* a standing queue in the app, as CoDel sees one: over the last full `window_s`, even the fastest
  POST /messages took longer than `max_sojourn_s` from having its body to its answer, or none
  finished while `min_inflight` of them had their bodies. The minimum, not the mean: a burst the
  replica clears within the window is served, not shed. The clock starts when the body has arrived:
  Serve hands it over with one more replica -> proxy actor call per request, and a saturated proxy
  makes that wait seconds long while this loop is idle. That queue is the proxy's; shedding here
  would not drain it (counting it sheds most requests while the proxy stays just as slow), so only
  what the app itself waits on counts: our CPU and Redis;
* the replica's event loop has lagged more than `max_lag_s` behind for all of the last `window_s`
  (a ticker measures it: a saturated CPU shows here before requests finish slowly).

The last two only apply with at least `min_inflight` requests in flight, so a lone slow request or a
GC pause never sheds the trickle that follows it. A shed request costs us almost nothing: it is
answered before Serve's body fetch starts (which is then cancelled) and before any auth or Redis call.

Exempt: the ops routes (`/healthz`, `/readyz`, `/metrics`: probes must see the truth) and SSE streams
(`GET .../events`: long-lived, and a browser's EventSource gives up for good on a non-200 answer).

A shed request did nothing and is not audited one by one (writing to Redis per refused request is
what overload cannot afford): each second with sheds adds one audit entry (`route` "(shed)", the count
in `params`) and a log line (in flight, loop lag, time in app), and `/metrics` has
`wa_ingress_shed_total` and `wa_ingress_inflight`.

The limits can be changed at run time, for every replica, without a redeploy: the hash
`wa:cfg:admission` (fields `max_inflight`, `max_sojourn_ms`, `max_lag_ms`, `window_ms`, `min_inflight`)
is read once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wa_ray.serve_app.errors import error_body
from wa_ray.storage import keys
from wa_ray.storage.audit import AuditEntry, AuditLog

log = logging.getLogger(__name__)

TICK_S = 0.05
REFRESH_S = 1.0
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class Limits:
    max_inflight: int = 512
    max_sojourn_s: float = 0.5
    max_lag_s: float = 0.1
    window_s: float = 1.0
    min_inflight: int = 16
    retry_after_s: int = 1

    def merged(self, fields: dict[str, str]) -> Limits:
        """These limits with the run-time overrides of `wa:cfg:admission` (malformed fields ignored)."""
        out = self
        for name, attr, parse in (("max_inflight", "max_inflight", lambda v: max(1, int(v))),
                                  ("max_sojourn_ms", "max_sojourn_s", lambda v: max(0.001, float(v) / 1000)),
                                  ("max_lag_ms", "max_lag_s", lambda v: max(0.001, float(v) / 1000)),
                                  ("window_ms", "window_s", lambda v: max(TICK_S, float(v) / 1000)),
                                  # at least 1: "none finished" must mean requests were there to finish
                                  ("min_inflight", "min_inflight", lambda v: max(1, int(v)))):
            with contextlib.suppress(ValueError, KeyError, OverflowError):
                value = parse(fields[name])
                if math.isfinite(value):
                    out = replace(out, **{attr: value})
        return out


def timed(scope: Scope) -> bool:
    """The requests whose time in app is the overload signal: POST /messages, the hot path, quick when healthy.
    (Control-plane calls such as creating a session wait on the supervisor for seconds by design.)"""
    path = scope["path"]
    return scope["method"] == "POST" and path.startswith("/v1/workspaces/") and path.endswith("/messages")


def exempt(scope: Scope) -> bool:
    path = scope["path"]
    return path in EXEMPT_PATHS or (scope["method"] == "GET" and path.startswith("/v1/") and path.endswith("/events"))


class Admission:
    """This replica's gate: what is in flight, how long it takes, the loop lag, the limits.

    `middleware` puts it in front of an app. Per request it costs a few comparisons; everything
    windowed is folded by the ticker, 20 times a second."""

    def __init__(self, redis: aioredis.Redis | None = None, audit: AuditLog | None = None,
                 limits: Limits | None = None) -> None:
        self._redis = redis
        self._audit = audit
        self.defaults = limits or Limits()
        self.limits = self.defaults
        self.inflight = 0
        self.working = 0  # POST /messages in flight that have their body: the app's own queue
        self.shed_total = 0
        self._shed_unreported = 0
        # the loop lag: recent ticks, and their least lag over the window as of the last tick
        self._ticks: deque[tuple[float, float]] = deque(maxlen=256)
        self._lag_window_min: float | None = None
        self._lag_last_tick = 0.0
        self._due: float | None = None  # loop time the ticker should wake at
        # the time in app: the window being filled, and the last full one (None: no request finished in it)
        self._window_start: float | None = None
        self._window_fastest = math.inf
        self._window_done = 0
        self._window_busy = False  # min_inflight timed requests were in flight at some point of the window
        self._last_fastest: float | None = None
        self._last_busy = False
        self._last_end = 0.0
        self._served: list[float] = []  # time in app of each request since the last report (for the log line)
        self._monitor: asyncio.Task[None] | None = None
        self._body = orjson.dumps(error_body(
            "overloaded", "the service is over capacity; retry after the Retry-After delay",
            {"retry_after_s": self.defaults.retry_after_s}))

    def stats(self) -> dict[str, int]:
        return {"inflight": self.inflight, "shed_total": self.shed_total}

    def standing_lag_s(self, now: float) -> float:
        """The least the loop lagged over the last window: the ticks of the window that ended at the last
        tick, plus the pending tick once it is later than the target (when the last tick is older than a
        window, that one alone: the loop is that far behind; a pending tick not yet that late could still
        turn out punctual, so it does not count)."""
        lim = self.limits
        lags = []
        if self._lag_window_min is not None and now - self._lag_last_tick <= lim.window_s:
            lags.append(self._lag_window_min)
        if self._due is not None and now - self._due > lim.max_lag_s:
            lags.append(now - self._due)
        return min(lags) if lags else 0.0

    def standing_sojourn_s(self, now: float) -> float:
        """The fastest time in app over the last full window; inf when a busy window finished nothing.
        0 when there is no recent full window (the ticker has not run yet, or not lately)."""
        if now - self._last_end > 2 * self.limits.window_s:
            return 0.0
        if self._last_fastest is None:
            return math.inf if self._last_busy else 0.0
        return self._last_fastest

    def overloaded(self, now: float) -> bool:
        lim = self.limits
        if self.inflight >= lim.max_inflight:
            return True
        if self.inflight < lim.min_inflight:
            return False
        return self.standing_sojourn_s(now) > lim.max_sojourn_s or self.standing_lag_s(now) > lim.max_lag_s

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """For `app.add_middleware(gate.middleware)`: Starlette calls it with the app it wraps."""
        async def admit(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or exempt(scope):
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            if self._monitor is None or self._monitor.done():
                self._monitor = loop.create_task(self._watch(), name="ingress-admission")
            started = loop.time()
            if self.overloaded(started):
                self.shed_total += 1
                self._shed_unreported += 1
                await self._shed(send)
                return
            self.inflight += 1
            if not timed(scope):
                try:
                    await app(scope, receive, send)
                finally:
                    self.inflight -= 1
                return
            body_at: float | None = None

            async def receive_timed() -> Message:
                nonlocal body_at
                message = await receive()
                if body_at is None and message["type"] == "http.request" and not message.get("more_body", False):
                    body_at = loop.time()  # the clock of this request's own queueing starts here
                    self.working += 1
                    if self.working >= self.limits.min_inflight:
                        self._window_busy = True
                return message

            try:
                await app(scope, receive_timed, send)
            finally:
                self.inflight -= 1
                if body_at is not None:
                    self.working -= 1
                took = loop.time() - (body_at if body_at is not None else started)
                self._window_done += 1
                if took < self._window_fastest:
                    self._window_fastest = took
                self._served.append(took)

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
            window = self.limits.window_s
            self._ticks.append((now, max(0.0, now - self._due)))
            while self._ticks and self._ticks[0][0] < now - window:
                self._ticks.popleft()
            self._lag_window_min = min(lag for _, lag in self._ticks)
            self._lag_last_tick = now
            if self._window_start is None:
                self._window_start = now
            elif now - self._window_start >= window:
                self._last_fastest = self._window_fastest if self._window_done else None
                self._last_busy = self._window_busy or self.working >= self.limits.min_inflight
                self._last_end = now
                self._window_start, self._window_fastest, self._window_done = now, math.inf, 0
                self._window_busy = self.working >= self.limits.min_inflight

    async def _refresh_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # bookkeeping must never stop the loop (Redis down: keep limits)
                await self._refresh()
            await asyncio.sleep(REFRESH_S)

    async def _refresh(self) -> None:
        shed, self._shed_unreported = self._shed_unreported, 0
        served, self._served = sorted(self._served), []
        if shed:
            now = asyncio.get_running_loop().time()
            log.warning("overloaded: shed %d requests in the last second (%d in flight; standing loop lag %.0f ms, "
                        "standing time in app %.0f ms; %d served, time in app p50 %.0f ms, max %.0f ms)",
                        shed, self.inflight, self.standing_lag_s(now) * 1000,
                        min(self.standing_sojourn_s(now), 1e6) * 1000, len(served),
                        served[len(served) // 2] * 1000 if served else 0, served[-1] * 1000 if served else 0)
            if self._audit is not None:
                await self._audit.record(AuditEntry(
                    ts=time.time(), who="anonymous", role=None, method="*", route="(shed)", path="*",
                    workspace_id=None, status=503, outcome="shed", request_id="", params={"count": str(shed)}))
        if self._redis is not None:
            fields: dict[str, Any] = await self._redis.hgetall(keys.admission())
            self.limits = self.defaults.merged(fields) if fields else self.defaults
