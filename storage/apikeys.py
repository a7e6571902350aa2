"""API keys: id, role, workspace scope, rate limit, and the HMAC secret encrypted at rest.

The secret must be recoverable (the server recomputes the HMAC over each
request), so it is encrypted with a key derived from the master key
(AES-256-GCM, key id in the blob header) rather than hashed. It is never part
of a repr, a listing or a log line: `ApiKey.secret` has `repr=False` and
`list()` returns `ApiKeyInfo`, which has no secret at all.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as aioredis

from sessions.crypto import DecryptError, MasterKey, decrypt, encrypt
from storage import keys
from storage.batch import Batcher
from wa_ray.ids import is_valid_id

Role = Literal["admin", "workspace", "read"]
ROLES: tuple[str, ...] = ("admin", "workspace", "read")

# Requests per second and burst per key when the creator does not say. Admin keys are what
# operators and the bench use, so theirs sits well above the 167 msg/s throughput goal.
DEFAULT_RATE: dict[str, tuple[float, int]] = {"admin": (1000.0, 2000), "workspace": (100.0, 200),
                                              "read": (50.0, 100)}


_OPENED_MAX = 4096
PURPOSE = "api-key-secrets"
log = logging.getLogger(__name__)


def secret_aad(key_id: str, role: str, workspace_id: str | None) -> bytes:
    """What a key's secret blob is bound to: a record whose role or workspace was edited in Redis, or a
    secret copied onto another key id, no longer decrypts, and such a key authenticates nothing."""
    return f"api-key:{key_id}:{role}:{workspace_id or ''}".encode()


class KeyExists(ValueError):
    pass


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: everything but the secret."""

    key_id: str
    role: str
    workspace_id: str | None
    rate_per_s: float  # 0 = unlimited
    burst: int
    created_at: float
    label: str = ""


@dataclass(frozen=True)
class ApiKey(ApiKeyInfo):
    secret: str = field(default="", repr=False)

    def info(self) -> ApiKeyInfo:
        return ApiKeyInfo(self.key_id, self.role, self.workspace_id, self.rate_per_s, self.burst,
                          self.created_at, self.label)


def validate(role: str, workspace_id: str | None, key_id: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "workspace" and not workspace_id:
        raise ValueError("a workspace key needs a workspace id")
    if role == "admin" and workspace_id:
        raise ValueError("an admin key covers every workspace; give it no workspace id")
    if workspace_id is not None and not is_valid_id(workspace_id):
        raise ValueError("workspace id must match ^[a-z0-9][a-z0-9_-]{0,63}$")
    if not is_valid_id(key_id):
        raise ValueError("key id must match ^[a-z0-9][a-z0-9_-]{0,63}$")


class ApiKeyStore:
    def __init__(self, redis: aioredis.Redis, master: MasterKey, previous: Sequence[MasterKey] = (),
                 batch: Batcher | None = None) -> None:
        self._redis = redis
        self._reader: Batcher | aioredis.Redis = batch or redis  # `get` is on every signed request
        self._key = MasterKey(master.derive(PURPOSE))
        # keys of a master key being rotated out still decrypt (wa_ray/rotation.py re-encrypts them)
        self._readers = [self._key, *(MasterKey(k.derive(PURPOSE)) for k in previous)]
        # (encrypted blob, what it is bound to) -> its secret: every signed request reads its key, and
        # AES-GCM (plus the blob's parsing) need not run again for a blob already opened. Keyed by the
        # ciphertext and its associated data, so a key re-created or rotated (new blob) is decrypted
        # afresh and an edited role is checked afresh; a revoked key is gone from Redis, so `get` still
        # answers None at once. Bounded: cleared when full.
        self._opened: dict[tuple[str, bytes], str] = {}

    async def create(self, role: str, workspace_id: str | None = None, key_id: str | None = None,
                     secret: str | None = None, *, rate_per_s: float | None = None, burst: int | None = None,
                     label: str = "", replace: bool = True) -> ApiKey:
        """Store a key. `replace=False` refuses to overwrite an existing id (the CLI); the service's
        bootstrap key is re-created on every start, so the default replaces."""
        key_id = key_id or f"key_{secrets.token_hex(6)}"
        validate(role, workspace_id, key_id)
        default_rate, default_burst = DEFAULT_RATE[role]
        rate = default_rate if rate_per_s is None else float(rate_per_s)
        if rate < 0 or (burst is not None and burst < 1):
            raise ValueError("rate must be >= 0 (0 = unlimited) and burst >= 1")
        key = ApiKey(key_id, role, workspace_id, rate, burst or max(default_burst, int(rate * 2)),
                     time.time(), label[:200], secret or secrets.token_urlsafe(32))
        record = {"role": key.role, "workspace_id": key.workspace_id or "", "rate_per_s": key.rate_per_s,
                  "burst": key.burst, "created_at": key.created_at, "label": key.label,
                  "secret": encrypt(self._key, key.secret.encode(),
                                    secret_aad(key_id, key.role, key.workspace_id)).hex()}
        if not replace and await self._redis.exists(keys.api_key(key_id)):
            raise KeyExists(f"key {key_id} exists; revoke it first")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_key(key_id))
            pipe.hset(keys.api_key(key_id), mapping=record)
            pipe.sadd(keys.api_key_index(), key_id)
            await pipe.execute()
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        if not is_valid_id(key_id):
            return None  # never builds a Redis key from a malformed id
        rec = await self._reader.hgetall(keys.api_key(key_id))
        if not rec or "secret" not in rec:
            return None
        if rec.get("role") not in ROLES:
            return None
        opened = (rec["secret"], secret_aad(key_id, rec["role"], rec.get("workspace_id") or None))
        secret = self._opened.get(opened)
        if secret is None:
            try:
                secret = decrypt(self._readers, bytes.fromhex(opened[0]), opened[1]).decode()
            except (DecryptError, ValueError):
                # edited in Redis (role, workspace, or a secret from another key), or not ours at all
                log.warning("api key %s: its secret does not open for its record; refusing the key", key_id)
                return None
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[opened] = secret
        return ApiKey(key_id, rec["role"], rec.get("workspace_id") or None,
                      float(rec.get("rate_per_s") or DEFAULT_RATE[rec["role"]][0]),
                      int(rec.get("burst") or DEFAULT_RATE[rec["role"]][1]),
                      float(rec.get("created_at") or 0), rec.get("label", ""), secret)

    async def exists(self, key_id: str) -> bool:
        return is_valid_id(key_id) and bool(await self._redis.exists(keys.api_key(key_id)))

    async def list(self) -> list[ApiKeyInfo]:
        out = []
        for key_id in sorted(await self._redis.smembers(keys.api_key_index())):
            key = await self.get(key_id)
            if key is not None:
                out.append(key.info())
        return out

    async def revoke(self, key_id: str) -> bool:
        """Immediate: the next signed request with this key is 403, and tokens it issued stop working."""
        if not is_valid_id(key_id):
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.api_key(key_id))
            pipe.srem(keys.api_key_index(), key_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)
