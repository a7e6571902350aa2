"""Encrypted WhatsApp Web auth state (Playwright storage_state incl. IndexedDB).

Files under `{data_dir}/sessions/{ws}/{sid}/auth.bin` (dirs 0700, file 0600),
or Redis (`WA_AUTH_STORE=redis`) when sessions can move between machines.
Each blob is bound to its session (`auth_aad`): one session's state copied over another's fails to
decrypt instead of logging the second session in as the first's account.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis

from wa_ray.crypto import MasterKey, decrypt, encrypt
from wa_ray.master_keys import load_master_keys
from wa_ray.storage import keys
from wa_ray.ids import require_id
from wa_ray.runtime import RuntimeConfig


class AuthStore(Protocol):
    async def save(self, ws: str, sid: str, state: bytes) -> None: ...
    async def load(self, ws: str, sid: str) -> bytes | None: ...
    async def delete(self, ws: str, sid: str) -> None: ...


def open_auth_store(config: RuntimeConfig, redis: aioredis.Redis) -> AuthStore:
    """Files on the node by default; Redis when sessions must be able to move between machines."""
    keys_ = list(load_master_keys(config))
    if config.auth_store == "redis":
        return RedisAuthStore(redis, keys_)
    return FileAuthStore(config.data_dir, keys_)


def auth_aad(ws: str, sid: str) -> bytes:
    """What an auth state blob is bound to: its kind and its session."""
    return f"auth-state:{ws}:{sid}".encode()


class FileAuthStore:
    def __init__(self, data_dir: str | Path, keys_: list[MasterKey]) -> None:
        self._root = Path(data_dir) / "sessions"
        self._keys = keys_  # the first encrypts; all decrypt (rotation)

    def _dir(self, ws: str, sid: str) -> Path:
        return self._root / require_id(ws, "workspace id") / require_id(sid, "session id")

    async def save(self, ws: str, sid: str, state: bytes) -> None:
        directory = self._dir(ws, sid)
        for d in (self._root, self._root / ws, directory):
            d.mkdir(mode=0o700, exist_ok=True, parents=True)
            os.chmod(d, 0o700)
        tmp = directory / "auth.bin.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(encrypt(self._keys[0], state, auth_aad(ws, sid)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / "auth.bin")  # atomic: a crash never leaves half a state

    async def load(self, ws: str, sid: str) -> bytes | None:
        path = self._dir(ws, sid) / "auth.bin"
        if not path.exists():
            return None
        return decrypt(self._keys, path.read_bytes(), auth_aad(ws, sid))

    async def delete(self, ws: str, sid: str) -> None:
        directory = self._dir(ws, sid)
        if directory.exists():
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()

    def blobs(self) -> list[Path]:
        return sorted(self._root.glob("*/*/auth.bin"))


class RedisAuthStore:
    def __init__(self, redis: aioredis.Redis, keys_: list[MasterKey]) -> None:
        self._redis = redis
        self._keys = keys_

    async def save(self, ws: str, sid: str, state: bytes) -> None:
        await self._redis.set(keys.auth_state(ws, sid), encrypt(self._keys[0], state, auth_aad(ws, sid)).hex())

    async def load(self, ws: str, sid: str) -> bytes | None:
        blob = await self._redis.get(keys.auth_state(ws, sid))
        return decrypt(self._keys, bytes.fromhex(blob), auth_aad(ws, sid)) if blob else None

    async def delete(self, ws: str, sid: str) -> None:
        await self._redis.delete(keys.auth_state(ws, sid))
