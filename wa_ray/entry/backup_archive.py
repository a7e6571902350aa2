"""The backup archive's encryption: a passphrase, Argon2id, and AES-256-GCM in authenticated chunks.

Why not the master key: the archive carries the master key file, so it must open with something
else the operator keeps apart. The passphrase goes through Argon2id (cryptography's, already a
dependency; 64 MiB, 3 passes, 4 lanes: ~0.1 s here, costly to guess at scale). Its 64-byte output
is split: the first 32 bytes are the AES-256-GCM key, the next 16 a check value stored in the
header, so a wrong passphrase is told apart from a damaged archive (a KDF's output bytes are
independent: the check says nothing about the key).

Layout (all integers big-endian):

    header  "WARAYBK1" | kdf=1 (u8) | memory KiB (u32) | passes (u32) | lanes (u8) | salt (16)
            | nonce prefix (7) | check (16)
    chunks  length (u32) | AES-GCM(ciphertext + 16-byte tag), repeated

Each chunk holds at most 1 MiB of plaintext, under the nonce `prefix | index (u32) | final (u8)`
with the whole header as associated data (the STREAM construction): a changed byte anywhere,
reordered or dropped chunks, a cut-off end (no chunk marked final) or bytes after the final chunk
all fail with `ArchiveDamaged`. The key is new per archive (random salt), so nonces never repeat.
Readers bound the header's KDF cost, so a crafted header cannot make them allocate gigabytes.

Plaintext leaves `DecryptingReader` chunk by chunk, each authenticated, but the archive as a whole
is only known good once the reader reached the final chunk: callers verify first, then write.
No message here ever holds the passphrase or any plaintext.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MAGIC = b"WARAYBK1"
KDF_ARGON2ID = 1
CHUNK = 1 << 20
TAG = 16
_HEAD = struct.Struct(">8sBIIB16s7s16s")
_LEN = struct.Struct(">I")
MIN_PASSPHRASE = 12
# what this version writes, and the most a reader accepts from a header
MEMORY_KIB, PASSES, LANES = 64 * 1024, 3, 4
MAX_MEMORY_KIB, MAX_PASSES, MAX_LANES = 1024 * 1024, 16, 16


class ArchiveError(ValueError):
    """The archive cannot be opened; the message says why and holds no secret."""


class WrongPassphrase(ArchiveError):
    pass


class ArchiveDamaged(ArchiveError):
    pass


def check_passphrase(passphrase: bytes) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise ArchiveError(f"the backup passphrase must have at least {MIN_PASSPHRASE} characters")
    return passphrase


def _derive(passphrase: bytes, salt: bytes, memory_kib: int, passes: int, lanes: int) -> tuple[bytes, bytes]:
    out = Argon2id(salt=salt, length=64, iterations=passes, lanes=lanes, memory_cost=memory_kib).derive(passphrase)
    return out[:32], out[32:48]


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if final else 0)


@dataclass
class EncryptingWriter:
    """A write-only file object (what `tarfile.open(mode="w|")` needs) that encrypts into `out`.

    `close()` writes the final chunk; an archive whose writer was never closed reads as truncated."""

    out: IO[bytes]
    passphrase: bytes = field(repr=False)
    _aead: AESGCM = field(init=False, repr=False)
    _header: bytes = field(init=False, repr=False)
    _prefix: bytes = field(init=False, repr=False)
    _buf: bytearray = field(init=False, repr=False, default_factory=bytearray)
    _index: int = field(init=False, default=0)
    closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        salt, self._prefix = os.urandom(16), os.urandom(7)
        key, check = _derive(check_passphrase(self.passphrase), salt, MEMORY_KIB, PASSES, LANES)
        self._aead = AESGCM(key)
        self._header = _HEAD.pack(MAGIC, KDF_ARGON2ID, MEMORY_KIB, PASSES, LANES, salt, self._prefix, check)
        self.out.write(self._header)

    def _emit(self, data: bytes, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, final), data, self._header)
        self.out.write(_LEN.pack(len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed archive")
        self._buf += data
        while len(self._buf) > CHUNK:  # a full chunk goes out once more data follows: close() writes the last
            self._emit(bytes(self._buf[:CHUNK]), final=False)
            del self._buf[:CHUNK]
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buf), final=True)
            self._buf.clear()
            self.closed = True

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def _read_exact(src: IO[bytes], n: int) -> bytes:
    data = src.read(n)
    while len(data) < n:
        more = src.read(n - len(data))
        if not more:
            break
        data += more
    return data


class DecryptingReader:
    """A read-only file object (what `tarfile.open(mode="r|")` needs) over an archive's plaintext.

    The constructor reads the header and checks the passphrase (WrongPassphrase); reads raise
    ArchiveDamaged at the first chunk that fails. `read_all_and_verify()` reads to the end."""

    def __init__(self, src: IO[bytes], passphrase: bytes) -> None:
        self._src = src
        header = _read_exact(src, _HEAD.size)
        if len(header) < _HEAD.size or not header.startswith(MAGIC):
            raise ArchiveError("not a wa-ray backup archive (or one of a newer format)")
        _magic, kdf, memory_kib, passes, lanes, salt, prefix, check = _HEAD.unpack(header)
        if kdf != KDF_ARGON2ID or not (8 * lanes <= memory_kib <= MAX_MEMORY_KIB) or not (
                1 <= passes <= MAX_PASSES) or not (1 <= lanes <= MAX_LANES):
            raise ArchiveDamaged("the archive's header is damaged (its key-derivation parameters are out of range)")
        key, expected = _derive(passphrase, salt, memory_kib, passes, lanes)
        if expected != check:
            raise WrongPassphrase("the passphrase does not open this archive")
        self._aead = AESGCM(key)
        self._header, self._prefix = header, prefix
        self._index = 0
        self._buf, self._pos = b"", 0  # the current chunk's plaintext and how much of it was read
        self._done = False

    def _next_chunk(self) -> bytes:
        raw_len = _read_exact(self._src, _LEN.size)
        if len(raw_len) < _LEN.size:
            raise ArchiveDamaged("the archive is truncated: it ends before its last chunk")
        (size,) = _LEN.unpack(raw_len)
        if not TAG <= size <= CHUNK + TAG:
            raise ArchiveDamaged(f"the archive is damaged or was altered (chunk {self._index} has a bad length)")
        sealed = _read_exact(self._src, size)
        if len(sealed) < size:
            raise ArchiveDamaged("the archive is truncated: it ends before its last chunk")
        for final in (False, True):
            try:
                plain = self._aead.decrypt(_nonce(self._prefix, self._index, final), sealed, self._header)
            except InvalidTag:
                continue
            self._index += 1
            if final:
                if self._src.read(1):
                    raise ArchiveDamaged("the archive is damaged or was altered (bytes after its last chunk)")
                self._done = True
            return plain
        raise ArchiveDamaged(f"the archive is damaged or was altered (chunk {self._index} failed authentication)")

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n
        while want != 0:
            if self._pos == len(self._buf):
                if self._done:
                    break
                self._buf, self._pos = self._next_chunk(), 0
                continue
            end = len(self._buf) if want < 0 else min(len(self._buf), self._pos + want)
            parts.append(self._buf[self._pos:end])
            want = want - (end - self._pos) if want > 0 else want
            self._pos = end
        return b"".join(parts)

    def read_all_and_verify(self) -> int:
        """Read to the final chunk, keeping nothing; returns the plaintext size."""
        total = len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        while not self._done:
            total += len(self._next_chunk())
        return total
