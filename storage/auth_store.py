"""Encrypted WhatsApp Web auth state (Playwright storage_state incl. IndexedDB).

Files under `{data_dir}/sessions/{ws}/{sid}/auth.bin` (dirs 0700, file 0600),
or Redis (`WA_AUTH_STORE=redis`) when sessions can move between machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import redis.asyncio as aioredis

from sessions.crypto import MasterKey, decrypt, encrypt
from storage import keys
from wa_ray.ids import require_id


class FileAuthStore:
    def __init__(self, data_dir: str | Path, key: MasterKey) -> None:
        self._root = Path(data_dir) / "sessions"
        self._key = key

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
            fh.write(encrypt(self._key, state))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / "auth.bin")  # atomic: a crash never leaves half a state

    async def load(self, ws: str, sid: str) -> bytes | None:
        path = self._dir(ws, sid) / "auth.bin"
        if not path.exists():
            return None
        return decrypt([self._key], path.read_bytes())

    async def delete(self, ws: str, sid: str) -> None:
        directory = self._dir(ws, sid)
        if directory.exists():
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()


class RedisAuthStore:
    def __init__(self, redis: aioredis.Redis, key: MasterKey) -> None:
        self._redis = redis
        self._key = key

    async def save(self, ws: str, sid: str, state: bytes) -> None:
        await self._redis.set(keys.auth_state(ws, sid), encrypt(self._key, state).hex())

    async def load(self, ws: str, sid: str) -> bytes | None:
        blob = await self._redis.get(keys.auth_state(ws, sid))
        return decrypt([self._key], bytes.fromhex(blob)) if blob else None

    async def delete(self, ws: str, sid: str) -> None:
        await self._redis.delete(keys.auth_state(ws, sid))
