"""The backup archive's format: round trip, and every way it must refuse to open (wa_ray/entry/backup_archive.py)."""

from __future__ import annotations

import io
import os
import struct

import pytest

from wa_ray.entry.backup_archive import (CHUNK, ArchiveDamaged, ArchiveError, DecryptingReader, EncryptingWriter,
                                         WrongPassphrase, _HEAD)

PASS = b"correct horse battery staple"


def seal(plain: bytes, passphrase: bytes = PASS) -> bytes:
    out = io.BytesIO()
    with EncryptingWriter(out, passphrase) as w:
        for i in range(0, len(plain), 7919):  # odd write sizes, across chunk boundaries
            w.write(plain[i:i + 7919])
    return out.getvalue()


def open_all(blob: bytes, passphrase: bytes = PASS) -> bytes:
    reader = DecryptingReader(io.BytesIO(blob), passphrase)
    parts = []
    while part := reader.read(10240):
        parts.append(part)
    return b"".join(parts)


@pytest.fixture(scope="module")
def plain() -> bytes:
    return os.urandom(2 * CHUNK + 12345)  # three chunks: two full, one final


@pytest.fixture(scope="module")
def sealed(plain: bytes) -> bytes:
    return seal(plain)


def test_round_trip_across_chunks(plain: bytes, sealed: bytes) -> None:
    assert open_all(sealed) == plain
    assert plain[:4096] not in sealed  # encrypted, not just framed
    assert open_all(seal(b"")) == b""
    assert DecryptingReader(io.BytesIO(sealed), PASS).read_all_and_verify() == len(plain)


def test_each_archive_has_its_own_salt_and_nonces(plain: bytes, sealed: bytes) -> None:
    assert seal(plain[:100])[:_HEAD.size] != seal(plain[:100])[:_HEAD.size]


def test_wrong_passphrase_is_told_apart_and_not_echoed(sealed: bytes) -> None:
    with pytest.raises(WrongPassphrase) as err:
        DecryptingReader(io.BytesIO(sealed), b"not the passphrase at all")
    assert "passphrase does not open" in str(err.value)
    assert "not the passphrase" not in str(err.value) and PASS.decode() not in str(err.value)


@pytest.mark.parametrize("where", ["first chunk", "middle chunk", "last tag"])
def test_a_tampered_byte_is_refused(sealed: bytes, where: str) -> None:
    offset = {"first chunk": _HEAD.size + 4 + 100, "middle chunk": _HEAD.size + 4 + CHUNK + 16 + 4 + 500,
              "last tag": len(sealed) - 1}[where]
    bad = bytearray(sealed)
    bad[offset] ^= 0x01
    with pytest.raises(ArchiveDamaged, match="damaged or was altered"):
        open_all(bytes(bad))


def test_a_tampered_header_is_refused(sealed: bytes) -> None:
    bad = bytearray(sealed)
    bad[_HEAD.size - 16 - 3] ^= 0x01  # the nonce prefix: the passphrase still checks, every chunk fails
    with pytest.raises(ArchiveDamaged):
        open_all(bytes(bad))
    bad = bytearray(sealed)
    struct.pack_into(">I", bad, 9, 1 << 30)  # a crafted KDF cost (1 TiB): refused before any derivation
    with pytest.raises(ArchiveDamaged, match="out of range"):
        DecryptingReader(io.BytesIO(bytes(bad)), PASS)


@pytest.mark.parametrize("cut", [1, 17, 3 * 1000])
def test_a_truncated_archive_is_refused(sealed: bytes, cut: int) -> None:
    with pytest.raises(ArchiveDamaged, match="truncated|damaged"):
        open_all(sealed[:-cut])


def test_dropping_the_final_chunk_whole_is_truncation(plain: bytes, sealed: bytes) -> None:
    final_len = 4 + (len(plain) - 2 * CHUNK) + 16
    with pytest.raises(ArchiveDamaged, match="truncated"):
        open_all(sealed[:-final_len])


def test_bytes_after_the_end_are_refused(sealed: bytes) -> None:
    with pytest.raises(ArchiveDamaged, match="after its last chunk"):
        open_all(sealed + b"x")


def test_not_an_archive_and_short_passphrases() -> None:
    with pytest.raises(ArchiveError, match="not a wa-ray backup"):
        DecryptingReader(io.BytesIO(b"REDIS0009" + b"\0" * 100), PASS)
    with pytest.raises(ArchiveError, match="at least 12"):
        EncryptingWriter(io.BytesIO(), b"short")
