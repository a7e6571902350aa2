"""AES-256-GCM blobs with a key id in the header, so keys can rotate, bound to what they belong to.

Layout: magic (4) | key id (8 ASCII hex) | nonce (12) | ciphertext+tag.

* b"WAR2" (written now): the associated data is the header plus the caller's `aad`, which names the
  blob's kind and its owner (e.g. b"auth-state:acme:s1"). A blob copied onto another owner's record,
  or a record whose bound fields were edited (an API key's role), fails authentication.
* b"WAR1" (written before associated data existed): the header alone is authenticated. Still read,
  whatever `aad` the reader gives, so a data dir from before keeps working; `wa-ray rotate-key`
  rewrites every such blob as WAR2, after which none is left to swap.

The key id is authenticated in both: a blob cannot be re-labelled.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC_V1 = b"WAR1"
MAGIC = b"WAR2"
_HEADER = len(MAGIC) + 8 + 12


class DecryptError(ValueError):
    pass


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    def __repr__(self) -> str:  # never the key bytes, in a traceback or a log line
        return f"MasterKey(id={self.key_id.decode()})"

    @classmethod
    def from_b64(cls, value: str) -> MasterKey:
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ValueError("a master key must be base64 of exactly 32 bytes")
        return cls(raw)

    @staticmethod
    def generate_b64() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    def b64(self) -> str:
        return base64.b64encode(self.key).decode()

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.key).hexdigest()[:8].encode()

    def derive(self, purpose: str) -> bytes:
        """A separate key per purpose (stream tokens, secrets at rest) from the one master."""
        return hashlib.sha256(self.key + b"\x00" + purpose.encode()).digest()


def encrypt(key: MasterKey, plaintext: bytes, aad: bytes = b"") -> bytes:
    nonce = os.urandom(12)
    header = MAGIC + key.key_id
    return header + nonce + AESGCM(key.key).encrypt(nonce, plaintext, header + aad)


def key_id_of(blob: bytes) -> str:
    if blob[:4] not in (MAGIC, MAGIC_V1) or len(blob) < _HEADER:
        raise DecryptError("not a wa-ray blob")
    return blob[4:12].decode()


def is_current(blob: bytes, key: MasterKey) -> bool:
    """Written under `key` in the current format: what rotation may leave as it is."""
    return blob[:4] == MAGIC and key_id_of(blob) == key.key_id.decode()


def decrypt(keys: Sequence[MasterKey], blob: bytes, aad: bytes = b"") -> bytes:
    wanted = key_id_of(blob).encode()
    header, nonce = blob[:12], blob[12:_HEADER]
    associated = header + aad if blob[:4] == MAGIC else header
    for key in keys:
        if key.key_id == wanted:
            try:
                return AESGCM(key.key).decrypt(nonce, blob[_HEADER:], associated)
            except Exception as exc:  # InvalidTag: tampered, moved to another owner, or wrong key
                raise DecryptError("blob failed authentication") from exc
    raise DecryptError(f"no key with id {wanted.decode()}")
