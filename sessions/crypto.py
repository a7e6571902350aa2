"""AES-256-GCM blobs with a key id in the header, so keys can rotate.

Layout: b"WAR1" | key id (8 ASCII hex) | nonce (12) | ciphertext+tag.
The key id is authenticated as associated data: a blob cannot be re-labelled.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"WAR1"
_HEADER = len(MAGIC) + 8 + 12


class DecryptError(ValueError):
    pass


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @classmethod
    def from_b64(cls, value: str) -> MasterKey:
        raw = base64.b64decode(value)
        if len(raw) != 32:
            raise ValueError("WA_MASTER_KEY must be base64 of exactly 32 bytes")
        return cls(raw)

    @staticmethod
    def generate_b64() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.key).hexdigest()[:8].encode()

    def derive(self, purpose: str) -> bytes:
        """A separate key per purpose (stream tokens, secrets at rest) from the one master."""
        return hashlib.sha256(self.key + b"\x00" + purpose.encode()).digest()


def encrypt(key: MasterKey, plaintext: bytes) -> bytes:
    nonce = os.urandom(12)
    header = MAGIC + key.key_id
    return header + nonce + AESGCM(key.key).encrypt(nonce, plaintext, header)


def key_id_of(blob: bytes) -> str:
    if blob[:4] != MAGIC or len(blob) < _HEADER:
        raise DecryptError("not a wa-ray blob")
    return blob[4:12].decode()


def decrypt(keys: list[MasterKey], blob: bytes) -> bytes:
    wanted = key_id_of(blob).encode()
    for key in keys:
        if key.key_id == wanted:
            header, nonce = blob[:12], blob[12:_HEADER]
            try:
                return AESGCM(key.key).decrypt(nonce, blob[_HEADER:], header)
            except Exception as exc:  # InvalidTag: tampered or wrong key
                raise DecryptError("blob failed authentication") from exc
    raise DecryptError(f"no key with id {wanted.decode()}")
