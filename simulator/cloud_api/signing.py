"""Webhook body encoding and `X-Hub-Signature-256`, the way Meta does them.

Meta signs the exact bytes it sends: `sha256=` + hex HMAC-SHA256 of the raw
request body keyed with the app secret. Those bytes are JSON with every
non-ASCII character escaped as `\\uXXXX` (lowercase hex) and `/` escaped as
`\\/`. So a receiver that re-serialises the parsed JSON and signs that gets a
different digest - it must verify over the raw body. We encode the same way
so that mistake fails here and not in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"  # sha1, still sent by Meta


def encode_meta_json(payload: Any) -> bytes:
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    # A "/" can only occur inside JSON strings, where "\/" is a legal escape.
    return text.replace("/", "\\/").encode("ascii")


def signature_256(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_sha1(body: bytes, app_secret: str) -> str:
    return "sha1=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def verify_signature_256(body: bytes, header_value: str | None, app_secret: str) -> bool:
    """Receiver-side check, constant time; for tests and reference receivers."""
    if not header_value:
        return False
    return hmac.compare_digest(signature_256(body, app_secret), header_value.strip())
