"""Outgoing webhook signature: hex HMAC-SHA256 over "{ts}.{raw_body}"."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, ts: str, body: bytes) -> str:
    return hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, ts: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, ts, body), signature)
