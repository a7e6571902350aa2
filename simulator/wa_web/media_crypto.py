"""WhatsApp's media encryption, as the phone applies it before an upload and the page undoes it after a download.

A media message carries a random 32-byte `mediaKey`; HKDF-SHA256 (no salt, the media type's info string)
expands it to 112 bytes: iv (16), AES-256-CBC key (32), HMAC-SHA256 key (32). The file on the media server is
`AES-CBC(plain, PKCS#7) || HMAC(iv || ciphertext)[:10]`. `filehash` is the SHA-256 of the plain bytes and
`encFilehash` that of the stored file, both base64. The page (static/inbound.js, `WAWebDownloadManager`)
verifies the MAC and both hashes, so a simulator that served the wrong bytes fails there, as on the real site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The info string of each WhatsApp message type (ptt is audio, stickers are images).
MEDIA_INFO = {
    "image": b"WhatsApp Image Keys",
    "sticker": b"WhatsApp Image Keys",
    "video": b"WhatsApp Video Keys",
    "audio": b"WhatsApp Audio Keys",
    "ptt": b"WhatsApp Audio Keys",
    "document": b"WhatsApp Document Keys",
}
MAC_LEN = 10


@dataclass(frozen=True)
class EncryptedMedia:
    media_key: bytes
    enc: bytes  # what the media server stores and serves
    filehash: str  # base64 SHA-256 of the plain bytes
    enc_filehash: str  # base64 SHA-256 of `enc`


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def expand(media_key: bytes, wa_type: str) -> tuple[bytes, bytes, bytes]:
    """(iv, cipher key, mac key) of `media_key` for the WhatsApp message type `wa_type`."""
    out = HKDF(algorithm=hashes.SHA256(), length=112, salt=None, info=MEDIA_INFO[wa_type]).derive(media_key)
    return out[:16], out[16:48], out[48:80]


def encrypt(plain: bytes, wa_type: str, media_key: bytes | None = None) -> EncryptedMedia:
    media_key = media_key or secrets.token_bytes(32)
    iv, cipher_key, mac_key = expand(media_key, wa_type)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(mac_key, iv + ciphertext, hashlib.sha256).digest()[:MAC_LEN]
    enc = ciphertext + mac
    return EncryptedMedia(media_key, enc, _b64(hashlib.sha256(plain).digest()), _b64(hashlib.sha256(enc).digest()))


def decrypt(enc: bytes, wa_type: str, media_key: bytes) -> bytes:
    """The plain bytes; ValueError when the MAC does not match (wrong key, type or bytes)."""
    iv, cipher_key, mac_key = expand(media_key, wa_type)
    ciphertext, mac = enc[:-MAC_LEN], enc[-MAC_LEN:]
    if not hmac.compare_digest(hmac.new(mac_key, iv + ciphertext, hashlib.sha256).digest()[:MAC_LEN], mac):
        raise ValueError("media MAC mismatch")
    decryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
