"""Master key rotation: re-encrypt every blob (auth states in files and Redis, API key and webhook
secrets) under a new key. Run with the service stopped; blobs already under the new key are left as is,
so an interrupted rotation can simply be run again."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from sessions.crypto import MasterKey, decrypt, encrypt, key_id_of
from storage import keys

DERIVED_FIELDS = {  # hash key pattern -> (field, purpose of the derived key)
    f"{keys.PREFIX}:apikey:*": ("secret", "api-key-secrets"),
    f"{keys.PREFIX}:webhook:*": ("secret", "webhook-secrets"),
}


@dataclass
class RotationReport:
    files: int = 0
    redis_auth: int = 0
    secrets: int = 0
    unchanged: int = 0


def _reencrypt(blob: bytes, old: list[MasterKey], new: MasterKey, report: RotationReport) -> bytes | None:
    if key_id_of(blob) == new.key_id.decode():
        report.unchanged += 1
        return None
    return encrypt(new, decrypt(old, blob))


async def rotate(data_dir: Path, redis: aioredis.Redis, old: list[MasterKey], new: MasterKey) -> RotationReport:
    report = RotationReport()
    for path in sorted((data_dir / "sessions").glob("*/*/auth.bin")):
        fresh = _reencrypt(path.read_bytes(), old, new, report)
        if fresh is not None:
            tmp = path.with_suffix(".rotating")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(fresh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            report.files += 1
    async for key in redis.scan_iter(match=f"{keys.PREFIX}:auth:*"):
        fresh = _reencrypt(bytes.fromhex(await redis.get(key)), old, new, report)
        if fresh is not None:
            await redis.set(key, fresh.hex())
            report.redis_auth += 1
    for pattern, (field, purpose) in DERIVED_FIELDS.items():
        old_derived = [MasterKey(k.derive(purpose)) for k in old]
        new_derived = MasterKey(new.derive(purpose))
        async for key in redis.scan_iter(match=pattern):
            value = await redis.hget(key, field)
            if value is None:
                continue
            fresh = _reencrypt(bytes.fromhex(value), old_derived, new_derived, report)
            if fresh is not None:
                await redis.hset(key, field, fresh.hex())
                report.secrets += 1
    return report
