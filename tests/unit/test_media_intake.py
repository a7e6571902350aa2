"""actors/media_intake.py with the real media store (embedded Redis, files under tmp_path, real
encryption) and the real policy store: what is downloaded, when nothing is, and what is left behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wa_ray.actors.media_intake import clean_filename, clean_mimetype, intake
from wa_ray.storage.media import MediaStore
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicy, MediaPolicyStore

pytestmark = pytest.mark.asyncio

WS = "ws-intake"


@pytest.fixture
def store(redis, tmp_path: Path) -> MediaStore:
    return MediaStore(redis, tmp_path / "media", [("k0000001", os.urandom(32))])


class Source:
    """A download that counts whether it was opened and whether it was closed."""

    def __init__(self, data: bytes, piece: int = 64 * 1024, fail_after: int | None = None,
                 delay_s: float = 0.0) -> None:
        self.data, self.piece, self.fail_after, self.delay_s = data, piece, fail_after, delay_s
        self.opened = self.closed = 0

    async def __call__(self) -> AsyncIterator[bytes]:
        self.opened += 1
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        try:
            for sent, start in enumerate(range(0, len(self.data), self.piece)):
                if self.fail_after is not None and sent >= self.fail_after:
                    raise ConnectionResetError("peer went away")
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield self.data[start:start + self.piece]
        finally:
            self.closed += 1


def _files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "media").rglob("*") if p.is_file()]


async def _read(store: MediaStore, media_id: str) -> bytes:
    return b"".join([c async for c in store.chunks(WS, media_id)])


async def test_eager_stores_the_bytes_encrypted_and_describes_what_was_stored(store, tmp_path) -> None:
    data = os.urandom(700 * 1024 + 3)
    src = Source(data)
    media = await intake(store, MediaPolicy(), WS, mimetype="image/jpeg", filename="photo.jpg",
                         size_hint=123, chunks_factory=src, sha256="provider-said")
    assert media["status"] == "stored" and media["media_id"].startswith("med_")
    assert media["size"] == len(data) and media["sha256"] == hashlib.sha256(data).hexdigest()  # stored, not announced
    assert (media["mimetype"], media["filename"]) == ("image/jpeg", "photo.jpg")
    assert set(media) == {"media_id", "mimetype", "filename", "size", "sha256", "status"}
    assert await _read(store, media["media_id"]) == data
    assert data[:4096] not in _files(tmp_path)[0].read_bytes()  # at rest it is not the plaintext
    assert (src.opened, src.closed) == (1, 1)
    assert await store.info("ws-other", media["media_id"]) is None


async def test_off_downloads_nothing(store, tmp_path) -> None:
    src = Source(b"x" * 10)
    media = await intake(store, MediaPolicy("off"), WS, mimetype="video/mp4", filename=None, size_hint=10,
                         chunks_factory=src, sha256="ab" * 32)
    assert media == {"media_id": None, "mimetype": "video/mp4", "filename": None, "size": 10, "sha256": "ab" * 32,
                     "status": "off"}
    assert src.opened == 0 and _files(tmp_path) == []


async def test_announced_size_over_the_cap_downloads_nothing(store, tmp_path) -> None:
    src = Source(b"x" * 10)
    media = await intake(store, MediaPolicy("eager", 1000), WS, mimetype="application/pdf", filename="a.pdf",
                         size_hint=1001, chunks_factory=src)
    assert media["status"] == "too_large" and media["media_id"] is None and media["size"] == 1001
    assert src.opened == 0 and _files(tmp_path) == []


async def test_a_stream_larger_than_announced_stops_at_the_cap_and_leaves_nothing(store, tmp_path) -> None:
    src = Source(os.urandom(300 * 1024), piece=16 * 1024)
    media = await intake(store, MediaPolicy("eager", 100 * 1024), WS, mimetype="image/png", filename="x.png",
                         size_hint=50, chunks_factory=src)
    assert media["status"] == "too_large" and media["media_id"] is None
    assert src.closed == 1 and _files(tmp_path) == []


async def test_a_download_that_breaks_or_stalls_is_failed_and_leaves_nothing(store, tmp_path) -> None:
    broken = Source(os.urandom(400 * 1024), piece=32 * 1024, fail_after=5)
    media = await intake(store, MediaPolicy(), WS, mimetype="audio/ogg", filename=None, size_hint=None,
                         chunks_factory=broken)
    assert media["status"] == "failed" and media["media_id"] is None and broken.closed == 1

    slow = Source(b"y" * 4096, piece=1024, delay_s=0.5)
    started = asyncio.get_running_loop().time()
    media = await intake(store, MediaPolicy(), WS, mimetype="audio/ogg", filename=None, size_hint=4096,
                         chunks_factory=slow, timeout_s=0.3)
    assert media["status"] == "failed" and asyncio.get_running_loop().time() - started < 2.0
    assert slow.closed == 1

    async def refused() -> AsyncIterator[bytes]:
        raise PermissionError("egress denied")

    media = await intake(store, MediaPolicy(), WS, mimetype="audio/ogg", filename=None, size_hint=None,
                         chunks_factory=refused)
    assert media["status"] == "failed"
    assert _files(tmp_path) == []


async def test_the_workspace_policy_from_redis_decides(store, redis, tmp_path) -> None:
    policies = MediaPolicyStore(redis, cache_ttl_s=0)
    await policies.set(WS, MediaPolicy("off", 1024))
    src = Source(b"z" * 100)
    first = await intake(store, await policies.get(WS), WS, mimetype="image/jpeg", filename=None, size_hint=100,
                         chunks_factory=src)
    await policies.set(WS, MediaPolicy("eager", 1024))
    second = await intake(store, await policies.get(WS), WS, mimetype="image/jpeg", filename=None, size_hint=100,
                          chunks_factory=src)
    assert (first["status"], second["status"], src.opened) == ("off", "stored", 1)


async def test_sender_chosen_names_and_types_are_cleaned(store) -> None:
    media = await intake(store, MediaPolicy(), WS, mimetype="text/html\r\nX-Evil: 1", filename="../../etc/passwd\x00",
                         size_hint=-5, chunks_factory=Source(b"ok"))
    assert media["status"] == "stored" and media["mimetype"] == "application/octet-stream"
    assert media["filename"] == ".._.._etc_passwd_" and media["size"] == 2
    assert clean_filename("a" * 1000) == "a" * 255 and clean_filename("..") is None and clean_filename(5) is None
    assert clean_mimetype("application/pdf; charset=binary") == "application/pdf; charset=binary"
    assert clean_mimetype(None) == clean_mimetype("é/x") == "application/octet-stream"


async def test_lazy_allots_an_id_and_downloads_nothing(store, redis, tmp_path) -> None:
    pending = PendingMediaStore(redis, 600)
    source, data = Source(b"x" * 5000), b"x" * 5000

    async def defer(described: dict) -> str:
        return (await pending.allot(WS, source="webjs", max_bytes=10_000, locator={"session_id": "s1",
                                                                                   "wa_message_id": "w1"},
                                    **described)).media_id

    media = await intake(store, MediaPolicy("lazy", 10_000), WS, mimetype="image/png", filename="a/b.png",
                         size_hint=len(data), sha256="ab" * 32, chunks_factory=source, defer=defer)
    assert media["status"] == "pending" and media["filename"] == "a_b.png" and media["size"] == len(data)
    assert source.opened == 0 and _files(tmp_path) == [] and await store.info(WS, media["media_id"]) is None
    record = await pending.get(WS, media["media_id"])
    assert record is not None and record.locator == {"session_id": "s1", "wa_message_id": "w1"}
    assert await pending.get("ws-other", media["media_id"]) is None  # keyed by workspace
    # the first GET's download stores it under the announced id
    info = await store.put(WS, await source(), mimetype=record.mimetype, filename=record.filename,
                           max_bytes=record.max_bytes, media_id=record.media_id)
    assert info.media_id == media["media_id"] and await _read(store, info.media_id) == data
    # over the cap: described, no id allotted; no place to fetch from later, or a failing one: failed
    big = await intake(store, MediaPolicy("lazy", 100), WS, mimetype="image/png", filename=None,
                       size_hint=len(data), chunks_factory=source, defer=defer)
    assert (big["status"], big["media_id"]) == ("too_large", None)
    nowhere = await intake(store, MediaPolicy("lazy", 10_000), WS, mimetype="image/png", filename=None,
                           size_hint=None, chunks_factory=source)
    assert (nowhere["status"], nowhere["media_id"]) == ("failed", None)

    async def broken(described: dict) -> str:
        raise ConnectionError("redis went away")

    failed = await intake(store, MediaPolicy("lazy", 10_000), WS, mimetype="image/png", filename=None,
                          size_hint=None, chunks_factory=source, defer=broken)
    assert (failed["status"], failed["media_id"]) == ("failed", None)
    assert source.opened == 1  # only the store's own put above opened it
