"""API keys: id, role, workspace, and the HMAC secret encrypted at rest.

The secret must be recoverable (the server recomputes the HMAC), so it is
encrypted with a key derived from the master key rather than hashed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from sessions.crypto import MasterKey, decrypt, encrypt
from storage import keys

ROLES = ("admin", "workspace", "read")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    role: str
    workspace_id: str | None
    secret: str


class ApiKeyStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey) -> None:
        self._redis = redis
        self._key = MasterKey(master.derive("api-key-secrets"))

    async def create(self, role: str, workspace_id: str | None = None, key_id: str | None = None,
                     secret: str | None = None) -> ApiKey:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if role == "workspace" and not workspace_id:
            raise ValueError("a workspace key needs a workspace id")
        key = ApiKey(key_id or f"key_{secrets.token_hex(6)}", role, workspace_id, secret or secrets.token_urlsafe(32))
        await self._redis.hset(
            keys.api_key(key.key_id),
            mapping={"role": key.role, "workspace_id": key.workspace_id or "",
                     "secret": encrypt(self._key, key.secret.encode()).hex()},
        )
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        rec = await self._redis.hgetall(keys.api_key(key_id))
        if not rec:
            return None
        secret = decrypt([self._key], bytes.fromhex(rec["secret"])).decode()
        return ApiKey(key_id, rec["role"], rec["workspace_id"] or None, secret)

    async def revoke(self, key_id: str) -> bool:
        return bool(await self._redis.delete(keys.api_key(key_id)))
