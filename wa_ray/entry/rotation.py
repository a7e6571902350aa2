"""Master key rotation: re-encrypt every blob under a new key, so that it survives being killed half-way.

Every blob kind is covered, each with the associated data its store binds it to:

    auth state, file     {data_dir}/sessions/{ws}/{sid}/auth.bin       auth_aad(ws, sid)
    auth state, Redis    wa:{ws}:auth:{sid}  (keys.auth_state)         auth_aad(ws, sid)
    API key secret       wa:{k:id}:apikey .secret  (keys.api_key)      apikeys.secret_aad(id, role, ws)
    webhook secret       wa:{ws}:webhook .secret  (keys.webhook)       webhooks.secret_aad(ws, url)
    Cloud API secrets    wa:{ws}:provider .access_token, .app_secret   providers.secret_aad(field, ws, number, url)
                         (keys.provider)
    media files          {data_dir}/media/{ws}/{media_id}             per-file HKDF key bound to ws and id
                         (storage/media.py MediaStore.rekey: streamed, chunk by chunk)

The Redis blobs are found by SCAN of the key function's own pattern (`keys.auth_state("*", "*")`, ...),
and the ids the associated data needs are read back from each name through the same function
(`_KeyName`), so this follows storage/keys.py. The SCAN covers every node of a Redis Cluster
(storage/key_scan.py); each write is one HSET/SET of one key.

Crash safety is in the order (wa_ray/entry/cli.py `cmd_rotate_key` does the steps around `reencrypt_all`):
1. the new key is written to the key file first, with the old ones after it (one atomic, fsynced
   replace): from then on every reader has both, whatever happens;
2. each blob is rewritten on its own (a file by temp + fsync + rename, a Redis field by one HSET/SET),
   skipping those already under the new key in the current format, so a re-run after a kill finishes
   what is left and does nothing twice;
3. only when all are done is the old key dropped from the file.
Blobs in the old format (b"WAR1", no associated data) are rewritten too, under the new format.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wa_ray.crypto import MasterKey, decrypt, encrypt, is_current
from wa_ray.ids import ID_PATTERN
from wa_ray.storage import apikeys, keys, providers, webhooks
from wa_ray.storage.auth_store import auth_aad
from wa_ray.storage.key_scan import scan_batches
from wa_ray.storage.media import MediaError, MediaStore, media_root
from wa_ray.storage.redis_client import RedisClient

_ID = ID_PATTERN.removeprefix("^").removesuffix("$")


class RotationError(RuntimeError):
    pass


OnBlob = Callable[[str], None]  # called with a blob's name after it was rewritten (progress; tests)


@dataclass
class RotationReport:
    files: int = 0
    redis_auth: int = 0
    secrets: int = 0
    media: int = 0
    unchanged: int = 0


class _KeyName:
    """The names one key function gives: its SCAN pattern, and the ids a name was made of (each a valid id),
    read back through the function itself (its name for placeholder ids, split at the placeholders)."""

    def __init__(self, key: Callable[..., str], arity: int) -> None:
        parts = key(*(["\x00"] * arity)).split("\x00")
        self.pattern = "*".join(parts)
        self._re = re.compile(f"({_ID})".join(re.escape(p) for p in parts))

    def ids(self, name: str) -> tuple[str, ...] | None:
        match = self._re.fullmatch(name)
        return match.groups() if match else None


@dataclass(frozen=True)
class _Keys:
    """The readers (new first, then every old key) and the writer, for one derivation."""

    readers: tuple[MasterKey, ...]
    writer: MasterKey

    @classmethod
    def of(cls, new: MasterKey, old: Sequence[MasterKey], purpose: str | None = None) -> _Keys:
        def d(k: MasterKey) -> MasterKey:
            return MasterKey(k.derive(purpose)) if purpose else k

        return cls((d(new), *(d(k) for k in old)), d(new))

    def rewrite(self, name: str, blob: bytes, aad: bytes) -> bytes | None:
        """The blob under the new key, or None when it already is. A blob no key opens stops the
        rotation (RotationError naming it): retiring the old key must never be what loses it."""
        try:
            if is_current(blob, self.writer):
                decrypt([self.writer], blob, aad)  # still proves it is intact and bound where it lies
                return None
            return encrypt(self.writer, decrypt(self.readers, blob, aad), aad)
        except ValueError as exc:  # DecryptError, or a blob that is not one
            raise RotationError(f"{name}: {exc}; nothing was retired, fix or remove it and run again") from None


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".rotating")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


async def reencrypt_all(data_dir: Path, redis: RedisClient, old: Sequence[MasterKey], new: MasterKey,
                        on_blob: OnBlob | None = None) -> RotationReport:
    """Rewrite every blob not yet under `new` (read with `new` or any of `old`). Idempotent."""
    report = RotationReport()
    done = on_blob or (lambda _name: None)
    raw = _Keys.of(new, old)
    for path in sorted((Path(data_dir) / "sessions").glob("*/*/auth.bin")):
        ws, sid = path.parent.parent.name, path.parent.name
        fresh = raw.rewrite(str(path), path.read_bytes(), auth_aad(ws, sid))
        if fresh is None:
            report.unchanged += 1
            continue
        _write_file(path, fresh)
        report.files += 1
        done(str(path))
    media = MediaStore(redis, media_root(data_dir), [(k.key_id.decode(), k.key) for k in (new, *old)])
    for ws, media_id in await asyncio.to_thread(media.stored):
        try:
            rewritten = await media.rekey(ws, media_id)
        except MediaError as exc:
            raise RotationError(f"media {ws}/{media_id}: {exc}; nothing was retired, fix or remove it and run "
                                f"again") from None
        if not rewritten:
            report.unchanged += 1
            continue
        report.media += 1
        done(f"media {ws}/{media_id}")
    auth = _KeyName(keys.auth_state, 2)
    async for batch in scan_batches(redis, auth.pattern):
        for name in batch:
            ids = auth.ids(name)
            value = await redis.get(name) if ids else None
            if ids is None or value is None:
                continue
            fresh = raw.rewrite(name, bytes.fromhex(value), auth_aad(*ids))
            if fresh is None:
                report.unchanged += 1
                continue
            await redis.set(name, fresh.hex())
            report.redis_auth += 1
            done(name)

    async def fields(key: Callable[[str], str], purpose: str,
                     aads: Callable[[str, dict[str, str]], dict[str, bytes]]) -> None:
        derived = _Keys.of(new, old, purpose)
        named = _KeyName(key, 1)
        async for batch in scan_batches(redis, named.pattern):
            for name in batch:
                ids = named.ids(name)
                if ids is None or await redis.type(name) != "hash":
                    continue
                record = await redis.hgetall(name)
                for field, aad in aads(ids[0], record).items():
                    if not record.get(field):
                        continue
                    fresh = derived.rewrite(f"{name}.{field}", bytes.fromhex(record[field]), aad)
                    if fresh is None:
                        report.unchanged += 1
                        continue
                    await redis.hset(name, field, fresh.hex())
                    report.secrets += 1
                    done(f"{name}.{field}")

    await fields(keys.api_key, apikeys.PURPOSE, lambda key_id, r: {
        "secret": apikeys.secret_aad(key_id, r.get("role", ""), r.get("workspace_id") or None)})
    await fields(keys.webhook, webhooks.PURPOSE, lambda ws, r: {
        "secret": webhooks.secret_aad(ws, r.get("url", ""))})
    await fields(keys.provider, providers.PURPOSE, lambda ws, r: {
        f: providers.secret_aad(f, ws, r.get("phone_number_id", ""), r.get("graph_base_url", ""))
        for f in providers.SECRET_FIELDS})
    return report


async def rotate(data_dir: Path, redis: RedisClient, old: list[MasterKey], new: MasterKey) -> RotationReport:
    """`reencrypt_all` (kept under its former name for callers that hold the keys themselves)."""
    return await reencrypt_all(data_dir, redis, old, new)
