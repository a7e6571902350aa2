"""Request signing for service callers, shared by the server check and the clients.

X-Signature = hex HMAC-SHA256 over "{ts}\\n{nonce}\\n{METHOD}\\n{path?query}\\n{sha256hex(body)}".
X-Content-SHA256 = sha256hex(body), sent too: the one route that streams its body (a media upload) checks
the signature against it before reading, then the body against it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Generator

import httpx


def canonical(ts: str, nonce: str, method: str, path_query: str, body: bytes) -> bytes:
    return canonical_for_digest(ts, nonce, method, path_query, hashlib.sha256(body).hexdigest())


def canonical_for_digest(ts: str, nonce: str, method: str, path_query: str, body_sha256: str) -> bytes:
    """The same string, from the body's digest: a server streaming a large body checks the signature
    against the declared X-Content-SHA256 first and the body against that digest as it reads it."""
    return f"{ts}\n{nonce}\n{method.upper()}\n{path_query}\n{body_sha256}".encode()


def signature(secret: str, ts: str, nonce: str, method: str, path_query: str, body: bytes) -> str:
    return signature_for_digest(secret, ts, nonce, method, path_query, hashlib.sha256(body).hexdigest())


def signature_for_digest(secret: str, ts: str, nonce: str, method: str, path_query: str, body_sha256: str) -> str:
    return hmac.new(secret.encode(), canonical_for_digest(ts, nonce, method, path_query, body_sha256),
                    hashlib.sha256).hexdigest()


def signed_headers(key_id: str, secret: str, method: str, path_query: str, body: bytes,
                   ts: int | None = None, nonce: str | None = None) -> dict[str, str]:
    ts_s = str(int(time.time()) if ts is None else ts)
    nonce = nonce or secrets.token_hex(12)
    digest = hashlib.sha256(body).hexdigest()
    return {
        "X-Key-Id": key_id,
        "X-Timestamp": ts_s,
        "X-Nonce": nonce,
        "X-Content-SHA256": digest,  # what a server streaming the body checks the signature against
        "X-Signature": signature_for_digest(secret, ts_s, nonce, method, path_query, digest),
    }


class HmacAuth(httpx.Auth):
    """httpx auth flow: `httpx.AsyncClient(auth=HmacAuth(key_id, secret))` signs every request."""

    requires_request_body = True

    def __init__(self, key_id: str, secret: str) -> None:
        self._key_id, self._secret = key_id, secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path_query = request.url.raw_path.decode()
        request.headers.update(signed_headers(self._key_id, self._secret, request.method, path_query, request.content))
        yield request
