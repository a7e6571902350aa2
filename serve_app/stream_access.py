"""The access an open SSE stream holds: its slots under the concurrency caps, and the re-check that ends it.

A stream outlives the request that authenticated it, so its access is checked
again every `CHECK_EVERY_S` while it runs (`Authenticator.access_ended`): a
token past its expiry, a signed-out console token, a revoked or re-created key
ends the stream within that interval. The same check renews the stream's slot
leases (storage/streamslots.py), so a stream holds its slots exactly as long as
it holds its access; a replica that dies leaves leases that run out.

Caps: per token (`streams_per_token`) and per key together with every token it
issued (`streams_per_key`, or the key's own `max_streams`). Over either: 429
`too_many_streams`. Tokens of the operator's CLI have no key, only their token cap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio
from redis.exceptions import RedisError

from wa_ray.serve_app.auth import Authenticator, Principal
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.tokens import CLI_ISSUER
from wa_ray.storage.streamslots import LEASE_S, Lease, Slot, SlotsFull, StreamSlots

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0  # well inside LEASE_S, so a live stream's leases never run out
RETRY_AFTER_S = 5


@dataclass
class StreamAccess:
    auth: Authenticator
    slots: StreamSlots
    who: Principal
    lease: Lease | None
    every_s: float = CHECK_EVERY_S
    _released: bool = False

    @classmethod
    async def open(cls, auth: Authenticator, slots: StreamSlots, who: Principal, *, per_token: int,
                   per_key: int) -> StreamAccess:
        """Takes the stream's slots, or raises 429 naming the cap that is full."""
        wanted: list[Slot] = []
        if who.token_id:  # a token's slots are named under the key that issued it: one script, one hash slot
            wanted.append(Slot(who.key_id, per_token, token_id=who.token_id))
        if who.key_id != CLI_ISSUER:
            key = await auth.keys.get(who.key_id)
            wanted.append(Slot(who.key_id, (key.max_streams if key else 0) or per_key))
        try:
            lease = await slots.acquire(wanted) if wanted else None
        except SlotsFull as exc:
            per, cap = exc.slot.per, exc.slot.cap
            raise ApiError(429, "too_many_streams", f"this {per} already has its maximum of concurrent streams",
                           {"per": per, "limit": cap}, headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        return cls(auth, slots, who, lease)

    async def check(self) -> str | None:
        """Why access ended, or None while it holds (the slots are then renewed).

        Redis unreachable for a moment: the stream keeps going and the next check asks again (the
        expiry of a token is checked without Redis)."""
        try:
            reason = await self.auth.access_ended(self.who)
            if reason is None and self.lease is not None:
                await self.slots.renew(self.lease)
            return reason
        except (RedisError, OSError) as exc:
            log.info("stream access check: %s; keeping the stream until the next check", type(exc).__name__)
            return "token_expired" if self._expired() else None

    async def close(self) -> None:
        """Frees the slots at once; idempotent, and safe inside a cancelled task (shielded, bounded)."""
        if self._released or self.lease is None:
            return
        self._released = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
            try:
                await self.slots.release(self.lease)
            except (RedisError, OSError):
                log.info("stream slots not released; their leases run out in %s s", LEASE_S)

    def _expired(self) -> bool:
        return self.who.expires_at is not None and self.who.expires_at < time.time()
