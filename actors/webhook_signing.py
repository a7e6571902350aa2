"""Outgoing webhook signatures: the Standard Webhooks scheme, and our first scheme beside it.

Standard Webhooks (https://www.standardwebhooks.com), what the design names and what the maintained
verifiers (PHP, Python, Node, Go) check unchanged:

* `webhook-id`: the event id (the events stream id; a retry or a replay keeps it, so it is the dedupe key);
* `webhook-timestamp`: unix seconds of this attempt;
* `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"`.

The HMAC key is the secret's bytes. A `whsec_<base64>` secret (the standard's form) is keyed by the decoded
base64, as every Standard Webhooks verifier does with it. Any other secret (the form this API took before) is
keyed by its UTF-8 bytes: a Standard Webhooks library verifies it when given `whsec_` + base64 of the secret
(`standard_secret_of`).

The first scheme rides along for receivers written against it: `X-Timestamp` and `X-Signature` = hex
HMAC-SHA256 of `"{ts}.{body}"` keyed by the secret's UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

STANDARD_PREFIX = "whsec_"
STANDARD_KEY_BYTES = (24, 64)  # the standard asks for 24 to 64 random bytes


def standard_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks signature (the module docstring)."""
    if secret.startswith(STANDARD_PREFIX):
        return base64.b64decode(secret[len(STANDARD_PREFIX):])
    return secret.encode()


def is_standard_secret(secret: str) -> bool:
    """A `whsec_` secret whose base64 decodes to 24-64 bytes."""
    if not secret.startswith(STANDARD_PREFIX):
        return False
    try:
        key = base64.b64decode(secret[len(STANDARD_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return False
    return STANDARD_KEY_BYTES[0] <= len(key) <= STANDARD_KEY_BYTES[1]


def standard_secret_of(secret: str) -> str:
    """The secret as a Standard Webhooks library takes it: itself when it is one, else `whsec_` + its base64."""
    return secret if secret.startswith(STANDARD_PREFIX) else STANDARD_PREFIX + base64.b64encode(secret.encode()).decode()


def sign_standard(key: bytes, event_id: str, ts: str, body: bytes) -> str:
    """The `webhook-signature` header's value."""
    digest = hmac.new(key, f"{event_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secret: str, ts: str, body: bytes) -> str:
    """The first scheme's `X-Signature`."""
    return hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, ts: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, ts, body), signature)
