"""The media store on a real Redis and a real disk: streamed, chunked, authenticated per chunk and bound
to its workspace and id, so a tampered, truncated, reordered or moved file fails closed."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wa_ray.runtime import RuntimeConfig
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import write_key_file
from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage import keys
from wa_ray.storage.media import CHUNK, HEADER, MediaCorrupt, MediaNotFound, MediaStore, MediaTooLarge

KEY = ("0000aaaa", os.urandom(32))


async def pieces(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def read_all(store: MediaStore, ws: str, media_id: str) -> bytes:
    return b"".join([c async for c in store.chunks(ws, media_id)])


@pytest.fixture
def store(redis, tmp_path: Path) -> MediaStore:
    return MediaStore(redis, tmp_path / "media", [KEY], retention_s=3600)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
async def test_round_trip_at_chunk_boundaries(store: MediaStore, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    info = await store.put("acme", pieces(data), mimetype="image/png", filename="a.png", max_bytes=10 * CHUNK)
    assert (info.size, info.sha256, info.mimetype, info.filename) == (size, hashlib.sha256(data).hexdigest(),
                                                                     "image/png", "a.png")
    assert await read_all(store, "acme", info.media_id) == data
    path = tmp_path / "media" / "acme" / info.media_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert size < 32 or data[:32] not in path.read_bytes()  # encrypted at rest
    out = tmp_path / "plain.bin"
    assert (await store.export_plain("acme", info.media_id, out)) == info
    assert out.read_bytes() == data and stat.S_IMODE(out.stat().st_mode) == 0o600


async def test_too_large_leaves_nothing(store: MediaStore, tmp_path: Path, redis) -> None:
    with pytest.raises(MediaTooLarge):
        await store.put("acme", pieces(os.urandom(CHUNK * 2)), mimetype="image/png", filename=None,
                        max_bytes=CHUNK)
    assert list((tmp_path / "media" / "acme").iterdir()) == []
    assert await redis.zcard(keys.media_expiry()) == 0


async def test_other_workspace_and_bad_ids_see_nothing(store: MediaStore) -> None:
    info = await store.put_bytes("acme", b"secret", mimetype="text/plain")
    assert await store.info("acme", info.media_id) == info
    for ws, mid in (("other", info.media_id), ("acme", "med_nope"), ("acme", "../acme/" + info.media_id),
                    ("acme", ""), ("..", info.media_id), ("acme", info.media_id + "/..")):
        assert await store.info(ws, mid) is None
        with pytest.raises(MediaNotFound):
            await read_all(store, ws, mid)


async def _tampered(store: MediaStore, tmp_path: Path, edit) -> None:
    data = os.urandom(2 * CHUNK + 5)
    info = await store.put("acme", pieces(data), mimetype="image/png", filename=None, max_bytes=10 * CHUNK)
    path = tmp_path / "media" / "acme" / info.media_id
    blob = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(blob)))
    got = bytearray()
    with pytest.raises(MediaCorrupt):
        async for chunk in store.chunks("acme", info.media_id):
            got += chunk
    assert len(got) < len(data)  # stops at the first chunk that fails, never yields it


async def test_flipped_bit_fails_closed(store: MediaStore, tmp_path: Path) -> None:
    def flip(b: bytearray) -> bytearray:
        b[HEADER + CHUNK + 16 + 3] ^= 1  # inside the second chunk
        return b

    await _tampered(store, tmp_path, flip)


async def test_truncated_at_chunk_boundary_fails(store: MediaStore, tmp_path: Path) -> None:
    await _tampered(store, tmp_path, lambda b: b[:HEADER + 2 * (CHUNK + 16)])


async def test_reordered_chunks_fail(store: MediaStore, tmp_path: Path) -> None:
    def swap(b: bytearray) -> bytearray:
        one, two = b[HEADER:HEADER + CHUNK + 16], b[HEADER + CHUNK + 16:HEADER + 2 * (CHUNK + 16)]
        return b[:HEADER] + two + one + b[HEADER + 2 * (CHUNK + 16):]

    await _tampered(store, tmp_path, swap)


async def test_appended_chunk_fails(store: MediaStore, tmp_path: Path) -> None:
    await _tampered(store, tmp_path, lambda b: b + b[HEADER:HEADER + CHUNK + 16])


async def test_file_copied_under_another_id_or_workspace_fails(store: MediaStore, tmp_path: Path) -> None:
    mine = await store.put_bytes("acme", b"acme's invoice", mimetype="application/pdf")
    for ws in ("acme", "evil"):
        target = await store.put_bytes(ws, b"x", mimetype="application/pdf")
        (tmp_path / "media" / ws / target.media_id).write_bytes(
            (tmp_path / "media" / "acme" / mine.media_id).read_bytes())
        with pytest.raises(MediaCorrupt):
            await read_all(store, ws, target.media_id)


async def test_previous_key_still_reads_and_unknown_key_fails(redis, tmp_path: Path) -> None:
    old = ("0000bbbb", os.urandom(32))
    info = await MediaStore(redis, tmp_path, [old]).put_bytes("acme", b"before rotation", mimetype="text/plain")
    assert await read_all(MediaStore(redis, tmp_path, [KEY, old]), "acme", info.media_id) == b"before rotation"
    with pytest.raises(MediaCorrupt):
        await read_all(MediaStore(redis, tmp_path, [KEY]), "acme", info.media_id)


async def test_expiry_and_sweep(store: MediaStore, tmp_path: Path, redis) -> None:
    info = await store.put_bytes("acme", b"old", mimetype="text/plain")
    keep = await store.put_bytes("acme", b"new", mimetype="text/plain")
    assert 0 < await redis.ttl(keys.media("acme", info.media_id)) <= 3600
    assert await store.sweep(now=info.expires_at + 1) == 2
    assert await store.info("acme", info.media_id) is None
    assert not (tmp_path / "media" / "acme" / info.media_id).exists()
    assert not (tmp_path / "media" / "acme" / keep.media_id).exists()
    assert await store.sweep() == 0


async def test_factory_reads_current_and_previous_keys(redis, tmp_path: Path) -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    key_file = tmp_path / "master.key"
    write_key_file(key_file, [old])
    config = RuntimeConfig(redis_url="redis://x", web_url="http://x", data_dir=str(tmp_path),
                           master_key_file=str(key_file), media_retention_s=120)
    info = await media_store_for(redis, config).put_bytes("acme", b"kept", mimetype="text/plain")
    assert info.expires_at - info.created_at == pytest.approx(120)
    write_key_file(key_file, [new, old])  # rotate-key: the new key first, the old one still listed
    assert await read_all(media_store_for(redis, config), "acme", info.media_id) == b"kept"
    assert (tmp_path / "media" / "acme" / info.media_id).exists()


async def test_rotation_rewrites_media_under_the_new_key(redis, tmp_path: Path) -> None:
    from wa_ray.entry.rotation import RotationError, rotate

    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    before = MediaStore(redis, tmp_path / "media", [(old.key_id.decode(), old.key)])
    data = os.urandom(2 * CHUNK + 9)
    big = await before.put("acme", pieces(data), mimetype="video/mp4", filename=None, max_bytes=10 * CHUNK)
    small = await before.put_bytes("beta", b"tiny", mimetype="text/plain")

    report = await rotate(tmp_path, redis, [old], new)
    assert report.media == 2
    after = MediaStore(redis, tmp_path / "media", [(new.key_id.decode(), new.key)])  # the old key retired
    assert await read_all(after, "acme", big.media_id) == data
    assert await read_all(after, "beta", small.media_id) == b"tiny"
    assert (await rotate(tmp_path, redis, [old], new)).media == 0  # re-run: nothing left to do

    # a file no key opens stops the rotation before the old key could be retired
    third = MasterKey(os.urandom(32))
    path = tmp_path / "media" / "acme" / big.media_id
    blob = bytearray(path.read_bytes())
    blob[HEADER + 3] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(RotationError):
        await rotate(tmp_path, redis, [new], third)


async def test_put_and_read_hold_a_few_chunks_not_the_file(store: MediaStore) -> None:
    """32 MB in and out: peak Python allocations stay a few chunks, whatever the file's size."""
    import tracemalloc

    piece = os.urandom(64 * 1024)

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(512):
            yield piece

    tracemalloc.start()
    try:
        info = await store.put("acme", stream(), mimetype="video/mp4", filename=None, max_bytes=64 * 1024 * 1024)
        async for _chunk in store.chunks("acme", info.media_id):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 32 * 1024 * 1024
    print(f"\npeak {peak / 1024:.0f} KiB for a {info.size // (1024 * 1024)} MB file")
    # tracemalloc counts every thread of this process, and in the full suite the process also hosts the Ray
    # driver's threads: alone the peak is ~1.1 MB (four chunks), in the suite it was seen at 2.1 MB. The bound
    # is an eighth of the file, so a store that buffered the file (>= 32 MB) still fails it by far.
    assert peak < 16 * CHUNK < info.size // 8 + 1, peak
