"""Meta's two send-rate limits.

Both read their limits from the live config on every call, so a control-API
change applies to the very next request. Checks and bookkeeping happen with no
`await` in between, so concurrent requests on the event loop cannot overshoot.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class ThroughputLimiter:
    """Messages per second per business phone number (error 130429).

    A sliding one-second window: Meta enforces throughput per second and we
    want bursts above the limit to fail deterministically in tests.
    """

    def __init__(self, limit: Callable[[], int | None], now: Callable[[], float] = time.monotonic):
        self._limit = limit
        self._now = now
        self._recent: dict[str, deque[float]] = {}

    def try_acquire(self, phone_number_id: str) -> bool:
        limit = self._limit()
        if limit is None:
            return True
        now = self._now()
        recent = self._recent.setdefault(phone_number_id, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= limit:
            return False
        recent.append(now)
        return True


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default=0.0)


class PairRateLimiter:
    """Messages from one business number to one user (error 131056).

    Meta: one message every 6 s per pair, with bursts of up to 45 that borrow
    from future quota. That is a token bucket of capacity `burst` refilled at
    one token per `refill_seconds`.
    """

    def __init__(
        self,
        burst: Callable[[], int | None],
        refill_seconds: Callable[[], float],
        now: Callable[[], float] = time.monotonic,
    ):
        self._burst = burst
        self._refill_seconds = refill_seconds
        self._now = now
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def try_acquire(self, phone_number_id: str, wa_id: str) -> bool:
        burst = self._burst()
        if burst is None:
            return True
        now = self._now()
        bucket = self._buckets.get((phone_number_id, wa_id))
        if bucket is None:
            bucket = self._buckets[(phone_number_id, wa_id)] = _Bucket(tokens=float(burst), updated=now)
        refill = self._refill_seconds()
        if refill > 0:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) / refill)
        else:  # no refill interval: only the burst size limits, per instant
            bucket.tokens = float(burst)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
