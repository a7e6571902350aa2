"""Per-workspace webhook target (URL + signing secret, the secret encrypted at rest).

The secret's blob is bound to its workspace and URL (`secret_aad`): a secret copied to another
workspace, or a URL edited in Redis to point elsewhere, fails to decrypt and nothing is delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from wa_ray.crypto import MasterKey, decrypt, encrypt
from wa_ray.storage import keys
from wa_ray.storage.stream_consumer import ensure_group


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


PURPOSE = "webhook-secrets"


def secret_aad(ws: str, url: str) -> bytes:
    return f"webhook-secret:{ws}:{url}".encode()


_OPENED_MAX = 4096


class WebhookConfigStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive(PURPOSE))
        # keys of a master key being rotated out still decrypt (wa_ray/entry/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        # Secrets opened, by (blob, associated data): the dispatcher reads the target at every attempt, and
        # AES-GCM per delivery was its largest CPU cost after the POST. The record is still read each time,
        # so a changed URL or secret (a new blob) is opened afresh and a deleted webhook is gone at once.
        # Bounded: cleared when full.
        self._opened: dict[tuple[str, bytes], str] = {}

    async def set(self, ws: str, target: WebhookTarget) -> None:
        # Deliver from now on: events published before a webhook existed are not replayed into it.
        await ensure_group(self._redis, keys.events(ws), keys.WEBHOOK_GROUP, "$")
        # The record before the index (the one exception to "index first"): membership of
        # `webhook_workspaces` is what makes the dispatcher read the events, and it acks an event of a workspace
        # without a record as done. Record first, the events published in between wait in the group created
        # above and are delivered once the workspace is indexed; a crash in between leaves them waiting until
        # the retried (idempotent) set indexes it.
        await self._redis.hset(keys.webhook(ws), mapping={"url": target.url,
                                                          "secret": encrypt(self._key, target.secret.encode(),
                                                                            secret_aad(ws, target.url)).hex()})
        await self._redis.sadd(keys.webhook_workspaces(), ws)

    async def get(self, ws: str) -> WebhookTarget | None:
        return self.target_of(ws, await self._redis.hgetall(keys.webhook(ws)))

    def target_of(self, ws: str, rec: dict[str, str]) -> WebhookTarget | None:
        """The target in a stored record (HGETALL of `keys.webhook(ws)`, read by the caller's own pipeline)."""
        if not rec:
            return None
        opened = (rec["secret"], secret_aad(ws, rec["url"]))
        secret = self._opened.get(opened)
        if secret is None:
            secret = decrypt(self._readers, bytes.fromhex(opened[0]), opened[1]).decode()
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[opened] = secret
        return WebhookTarget(rec["url"], secret)
