"""The media store: files a workspace uploaded or a sender fetched, encrypted at rest, kept for a while.

A file lives at `<root>/<workspace>/<media_id>` (0600, directories 0700); its metadata (mimetype, file
name, size, sha256, times) is a Redis string with a TTL of the retention period, and the file is removed
by `sweep` once that period is over (run by `put` itself, at most every SWEEP_EVERY_S per store).
Nothing but a valid id (wa_ray/ids.py) ever reaches a path.

File format (chunked AES-256-GCM, one key per file):

    magic b"WAM1" | key id (8 ASCII hex) | salt (16) | chunk 0 | chunk 1 | ... | chunk n

* The file key is HKDF-SHA256 of the master key, salted with the file's random salt, its info naming the
  workspace and the media id: a file copied under another id or another workspace is read with another
  key and fails authentication.
* Each chunk is `CHUNK` bytes of plaintext (the last one at most that, never empty unless the file is)
  sealed with nonce = its index; the associated data is the header, the workspace, the media id, the
  index and a last-chunk flag. Reordered chunks fail (index), a file cut at a chunk boundary fails (the
  new last chunk was sealed as not last), appended bytes fail (a chunk after the last).
* Reading fails closed: `MediaCorrupt` is raised at the first chunk that does not authenticate, so a
  reader streams only bytes that did, and a consumer that stores the stream must discard it on error.

The store never sees the master key object: it is given `(key_id, key_bytes)` pairs, the current key
first (it encrypts), then the previous ones (still read while `wa-ray rotate-key` runs), by
`wa_ray.sessions.media_access.media_store_for`.

The files are on the local disk of the node that wrote them: one data dir per deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import orjson
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wa_ray.ids import is_valid_id
from wa_ray.storage import keys

MAGIC = b"WAM1"
_SALT = 16
HEADER = len(MAGIC) + 8 + _SALT
CHUNK = 256 * 1024  # plaintext bytes per sealed chunk
_TAG = 16
DEFAULT_RETENTION_S = 30 * 24 * 3600
_PART_MAX_AGE_S = 3600  # a `.part` file older than this is an abandoned upload
SWEEP_EVERY_S = 600.0

log = logging.getLogger(__name__)


class MediaError(Exception):
    """Base of the media store's errors; the message never names a path or a key."""


class MediaTooLarge(MediaError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class MediaNotFound(MediaError):
    """Missing, expired, or another workspace's: the three are never told apart."""


class MediaCorrupt(MediaError):
    """The file does not authenticate: tampered, truncated, moved, or its key is gone."""


@dataclass(frozen=True)
class MediaInfo:
    media_id: str
    workspace_id: str
    mimetype: str
    filename: str | None
    size: int
    sha256: str  # hex, of the plaintext
    created_at: float
    expires_at: float

    def public(self) -> dict[str, object]:
        """What the API and events show of it."""
        return {"media_id": self.media_id, "mimetype": self.mimetype, "filename": self.filename,
                "size": self.size, "sha256": self.sha256, "expires_at": self.expires_at}


def media_root(data_dir: str | Path) -> Path:
    return Path(data_dir) / "media"


def new_media_id() -> str:
    return f"med_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class _Sealer:
    """One file's key and associated-data prefix."""

    aead: AESGCM
    aad_prefix: bytes

    @classmethod
    def for_file(cls, master: bytes, header: bytes, ws: str, media_id: str) -> _Sealer:
        salt = header[len(MAGIC) + 8:HEADER]
        name = b"\x00".join((ws.encode(), media_id.encode()))
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"wa-ray media v1\x00" + name).derive(master)
        return cls(AESGCM(key), header + name)

    def _parts(self, index: int, last: bool) -> tuple[bytes, bytes]:
        nonce = b"\x00" * 4 + struct.pack(">Q", index)
        return nonce, self.aad_prefix + struct.pack(">QB", index, 1 if last else 0)

    def seal(self, index: int, last: bool, plain: bytes) -> bytes:
        nonce, aad = self._parts(index, last)
        return self.aead.encrypt(nonce, plain, aad)

    def open(self, index: int, last: bool, sealed: bytes) -> bytes:
        nonce, aad = self._parts(index, last)
        try:
            return self.aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise MediaCorrupt("media file failed authentication") from None


class MediaStore:
    def __init__(self, redis: aioredis.Redis, root: str | Path, master_keys: Sequence[tuple[str, bytes]],
                 retention_s: int = DEFAULT_RETENTION_S) -> None:
        if not master_keys:
            raise ValueError("the media store needs at least one key")
        if any(len(key_id.encode()) != 8 or len(key) != 32 for key_id, key in master_keys):
            raise ValueError("a media key is (8-character key id, 32 bytes)")
        self._redis = redis
        self._root = Path(root)
        self._keys = tuple(master_keys)  # current first
        self._retention_s = retention_s
        self._next_sweep = 0.0

    # -- paths ------------------------------------------------------------------------------------

    def _path(self, ws: str, media_id: str) -> Path:
        if not (is_valid_id(ws) and is_valid_id(media_id)):
            raise MediaNotFound("no such media")
        return self._root / ws / media_id

    def _dir(self, ws: str) -> Path:
        directory = self._root / ws
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return directory

    # -- writing ----------------------------------------------------------------------------------

    async def put(self, ws: str, chunks: AsyncIterable[bytes], *, mimetype: str, filename: str | None,
                  max_bytes: int, media_id: str | None = None) -> MediaInfo:
        """Encrypt `chunks` into a new file as they arrive (never the whole body in memory); MediaTooLarge
        as soon as more than `max_bytes` came, leaving nothing behind. `media_id`: an id allotted earlier
        (a lazily downloaded media keeps the id its event announced); a new one when None."""
        if not is_valid_id(ws):
            raise ValueError("invalid workspace id")
        if media_id is not None and not is_valid_id(media_id):
            raise ValueError("invalid media id")
        media_id = media_id or new_media_id()
        directory = await asyncio.to_thread(self._dir, ws)
        final, part = directory / media_id, directory / f"{media_id}.part"
        key_id, master = self._keys[0]
        header = MAGIC + key_id.encode() + os.urandom(_SALT)
        sealer = _Sealer.for_file(master, header, ws, media_id)
        digest, size, index = hashlib.sha256(), 0, 0
        buffer = bytearray()
        fh = await asyncio.to_thread(_open_new, part)
        try:
            await asyncio.to_thread(fh.write, header)
            async for piece in chunks:
                if not piece:
                    continue
                size += len(piece)
                if size > max_bytes:
                    raise MediaTooLarge(max_bytes)
                digest.update(piece)
                buffer += piece
                while len(buffer) > CHUNK:  # strictly more: the last chunk is always written at the end
                    plain = bytes(buffer[:CHUNK])
                    del buffer[:CHUNK]
                    await asyncio.to_thread(_write_sealed, fh, sealer, index, False, plain)
                    index += 1
            await asyncio.to_thread(_write_sealed, fh, sealer, index, True, bytes(buffer))
            await asyncio.to_thread(_finish, fh, part, final)
        except BaseException:
            await asyncio.to_thread(_discard, fh, part)
            raise
        now = time.time()
        info = MediaInfo(media_id, ws, mimetype, filename, size, digest.hexdigest(), now, now + self._retention_s)
        await self._save(info)
        await self._sweep_now_and_then(now)
        return info

    async def _sweep_now_and_then(self, now: float) -> None:
        """The background sweep rides on writes: at most once per SWEEP_EVERY_S per store, never failing
        the write (metadata expires on its own in Redis; only disk space waits for the next write)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        try:
            await self.sweep(now)
        except Exception:
            log.warning("media sweep failed", exc_info=True)

    async def put_bytes(self, ws: str, data: bytes, *, mimetype: str, filename: str | None = None) -> MediaInfo:
        async def once() -> AsyncIterator[bytes]:
            yield data

        return await self.put(ws, once(), mimetype=mimetype, filename=filename, max_bytes=len(data))

    async def _save(self, info: MediaInfo) -> None:
        # the global expiry index before the workspace's record: a crash in between leaves an index member
        # whose sweep unlinks a file that may not exist, never a record the sweep would not find
        await self._redis.zadd(keys.media_expiry(), {f"{info.workspace_id}/{info.media_id}": info.expires_at})
        await self._redis.set(keys.media(info.workspace_id, info.media_id), orjson.dumps(asdict(info)),
                              ex=max(1, int(info.expires_at - info.created_at)))

    # -- reading ----------------------------------------------------------------------------------

    async def info(self, ws: str, media_id: str) -> MediaInfo | None:
        """None: missing, expired, or another workspace's (the key names the workspace)."""
        if not (isinstance(media_id, str) and is_valid_id(ws) and is_valid_id(media_id)):
            return None
        raw = await self._redis.get(keys.media(ws, media_id))
        if raw is None:
            return None
        info = MediaInfo(**orjson.loads(raw))
        if info.expires_at <= time.time() or info.workspace_id != ws:
            return None
        return info

    async def chunks(self, ws: str, media_id: str) -> AsyncIterator[bytes]:
        """The plaintext, in order, each chunk authenticated before it is yielded. MediaNotFound when
        `info` would say None; MediaCorrupt at the first chunk that fails (the stream stops there)."""
        if await self.info(ws, media_id) is None:
            raise MediaNotFound("no such media")
        async for _index, _last, plain in self._opened(ws, media_id):
            yield plain

    async def _opened(self, ws: str, media_id: str) -> AsyncIterator[tuple[int, bool, bytes]]:
        """(index, last, plaintext) of each chunk of the file on disk, authenticated."""
        path = self._path(ws, media_id)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise MediaNotFound("no such media") from None
        try:
            header = await asyncio.to_thread(fh.read, HEADER)
            sealer = self._sealer_for(header, ws, media_id)
            index = 0
            block = await asyncio.to_thread(fh.read, CHUNK + _TAG)
            while True:
                following = await asyncio.to_thread(fh.read, CHUNK + _TAG) if len(block) == CHUNK + _TAG else b""
                last = not following
                yield index, last, await asyncio.to_thread(sealer.open, index, last, block)
                if last:
                    return
                block, index = following, index + 1
        finally:
            await asyncio.to_thread(fh.close)

    # -- key rotation -----------------------------------------------------------------------------

    def stored(self) -> list[tuple[str, str]]:
        """(workspace, media id) of every media file on disk (not the half-written ones)."""
        if not self._root.is_dir():
            return []
        return sorted((p.parent.name, p.name) for p in self._root.glob("*/*")
                      if is_valid_id(p.parent.name) and is_valid_id(p.name))

    async def rekey(self, ws: str, media_id: str) -> bool:
        """Rewrite one file under the current key (False: it already is). Streamed chunk by chunk into a
        temp file, fsynced, then renamed over the old one, so a crash leaves one whole file or the other.
        MediaCorrupt when the old file does not authenticate: rotation must stop rather than retire the
        only key that might still open it."""
        path = self._path(ws, media_id)
        with open(path, "rb") as fh:
            key_id = fh.read(HEADER)[len(MAGIC):len(MAGIC) + 8].decode("ascii", "replace")
        current_id, master = self._keys[0]
        if key_id == current_id:
            return False
        header = MAGIC + current_id.encode() + os.urandom(_SALT)
        sealer = _Sealer.for_file(master, header, ws, media_id)
        tmp = path.with_name(f"{media_id}.part")
        fh = await asyncio.to_thread(_open_new, tmp)
        try:
            await asyncio.to_thread(fh.write, header)
            async for index, last, plain in self._opened(ws, media_id):
                await asyncio.to_thread(_write_sealed, fh, sealer, index, last, plain)
            await asyncio.to_thread(_finish, fh, tmp, path)
        except BaseException:
            await asyncio.to_thread(_discard, fh, tmp)
            raise
        return True

    def _sealer_for(self, header: bytes, ws: str, media_id: str) -> _Sealer:
        if len(header) != HEADER or header[:len(MAGIC)] != MAGIC:
            raise MediaCorrupt("not a media file")
        wanted = header[len(MAGIC):len(MAGIC) + 8].decode("ascii", "replace")
        for key_id, master in self._keys:
            if key_id == wanted:
                return _Sealer.for_file(master, header, ws, media_id)
        raise MediaCorrupt("media file is under a key this process does not have")

    async def export_plain(self, ws: str, media_id: str, path: str | Path) -> MediaInfo:
        """Decrypt into `path` (created 0600); on any failure the partial file is removed."""
        info = await self.info(ws, media_id)
        if info is None:
            raise MediaNotFound("no such media")
        target = Path(path)
        fh = await asyncio.to_thread(_open_plain, target)
        try:
            async for plain in self.chunks(ws, media_id):
                await asyncio.to_thread(fh.write, plain)
            await asyncio.to_thread(fh.close)
        except BaseException:
            await asyncio.to_thread(_discard, fh, target)
            raise
        return info

    # -- expiry -----------------------------------------------------------------------------------

    async def delete(self, ws: str, media_id: str) -> None:
        await self._redis.delete(keys.media(ws, media_id))
        await self._redis.zrem(keys.media_expiry(), f"{ws}/{media_id}")
        try:
            await asyncio.to_thread(self._path(ws, media_id).unlink, True)
        except MediaNotFound:
            pass

    async def delete_workspace(self, ws: str) -> int:
        """Remove every media file of `ws` from this node's disk, and its directory; the count of files.
        The metadata keys and expiry entries are the caller's (storage/workspace_purge.py removes them)."""
        if not is_valid_id(ws):
            raise ValueError("invalid workspace id")
        return await asyncio.to_thread(_remove_dir, self._root / ws)

    async def sweep(self, now: float | None = None, limit: int = 1000) -> int:
        """Delete the files whose retention is over (and abandoned `.part` files); the count deleted."""
        now = time.time() if now is None else now
        due = await self._redis.zrangebyscore(keys.media_expiry(), "-inf", now, start=0, num=limit)
        for member in due:
            ws, _, media_id = member.partition("/")
            if is_valid_id(ws) and is_valid_id(media_id):
                await asyncio.to_thread((self._root / ws / media_id).unlink, True)
                await self._redis.delete(keys.media(ws, media_id))
            await self._redis.zrem(keys.media_expiry(), member)
        await asyncio.to_thread(_remove_stale_parts, self._root, now)
        return len(due)


def _open_new(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _open_plain(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _write_sealed(fh: BinaryIO, sealer: _Sealer, index: int, last: bool, plain: bytes) -> None:
    fh.write(sealer.seal(index, last, plain))


def _finish(fh: BinaryIO, part: Path, final: Path) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    os.replace(part, final)


def _discard(fh: BinaryIO, path: Path) -> None:
    try:
        fh.close()
    finally:
        path.unlink(missing_ok=True)


def _remove_dir(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.iterdir():
        if entry.is_file() or entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed += 0 if entry.name.endswith(".part") else 1
    directory.rmdir()
    return removed


def _remove_stale_parts(root: Path, now: float) -> None:
    if not root.is_dir():
        return
    for part in root.glob("*/*.part"):
        try:
            if now - part.stat().st_mtime > _PART_MAX_AGE_S:
                part.unlink(missing_ok=True)
        except OSError:
            continue
