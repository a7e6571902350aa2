"""Per-workspace webhook target (URL + signing secret, the secret encrypted at rest)."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from sessions.crypto import MasterKey, decrypt, encrypt
from storage import keys


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


class WebhookConfigStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive("webhook-secrets"))

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
                                                 "secret": encrypt(self._key, target.secret.encode()).hex()})
            pipe.sadd(keys.webhook_workspaces(), ws)
            await pipe.execute()

    async def get(self, ws: str) -> WebhookTarget | None:
        rec = await self._redis.hgetall(keys.webhook(ws))
        if not rec:
            return None
        return WebhookTarget(rec["url"], decrypt([self._key], bytes.fromhex(rec["secret"])).decode())

    async def workspaces(self) -> set[str]:
        return set(await self._redis.smembers(keys.webhook_workspaces()))
