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


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


PURPOSE = "webhook-secrets"


def secret_aad(ws: str, url: str) -> bytes:
    return f"webhook-secret:{ws}:{url}".encode()


class WebhookConfigStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive(PURPOSE))
        # keys of a master key being rotated out still decrypt (wa_ray/entry/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]

    async def set(self, ws: str, target: WebhookTarget) -> None:
        stream = keys.events(ws)
        try:
            # Deliver from now on: events published before a webhook existed are not replayed into it.
            await self._redis.xgroup_create(stream, keys.WEBHOOK_GROUP, id="$", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.webhook(ws), mapping={"url": target.url,
                                                 "secret": encrypt(self._key, target.secret.encode(),
                                                                   secret_aad(ws, target.url)).hex()})
            pipe.sadd(keys.webhook_workspaces(), ws)
            await pipe.execute()

    async def get(self, ws: str) -> WebhookTarget | None:
        rec = await self._redis.hgetall(keys.webhook(ws))
        if not rec:
            return None
        secret = decrypt(self._readers, bytes.fromhex(rec["secret"]), secret_aad(ws, rec["url"]))
        return WebhookTarget(rec["url"], secret.decode())

    async def workspaces(self) -> set[str]:
        return set(await self._redis.smembers(keys.webhook_workspaces()))
