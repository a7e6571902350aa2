"""Short-lived signed tokens for browsers, so a browser never holds an API secret.

Format: "{kind}.{base64url(claims)}.{hex HMAC-SHA256}". Each kind is signed with
its own key derived from the master key, so a stream token can never pass as a
console token or the reverse, and the kind is also a claim. Claims:
`ws` (bound workspace; None only for an admin's all-workspace console token),
`role`, `kid` (the API key that issued it: revoking the key revokes its
tokens; "-" for tokens minted by the operator's CLI), `gen` (that key's
generation when it issued the token: a key id revoked and created again is a
new generation, so the old key's tokens stay dead), `jti`, `exp`, and for
stream tokens an optional `sid` that pins the stream to one session.

Pure functions: no Redis here. Revocation (issuer gone, jti signed out) is
checked by the authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Literal

import orjson

from wa_ray.crypto import MasterKey

Kind = Literal["stream", "console"]
STREAM_TTL_S = 300
CONSOLE_TTL_S = 900
MAX_TOKEN_LEN = 2048
CLI_ISSUER = "-"


class TokenError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Claims:
    kind: str
    ws: str | None
    role: str
    kid: str
    jti: str
    exp: int
    sid: str | None = None
    gen: int = 0  # absent from tokens minted before generations existed, like from their keys


class TokenSigner:
    def __init__(self, master: MasterKey) -> None:
        self._keys = {"stream": master.derive("stream-tokens"), "console": master.derive("console-tokens")}

    def mint(self, kind: Kind, *, ws: str | None, role: str, kid: str, ttl_s: int,
             sid: str | None = None, gen: int = 0) -> tuple[str, Claims]:
        claims = Claims(kind, ws, role, kid, secrets.token_hex(8), int(time.time()) + ttl_s, sid, gen)
        payload = base64.urlsafe_b64encode(orjson.dumps(asdict(claims))).rstrip(b"=").decode()
        return f"{kind}.{payload}.{self._mac(kind, payload)}", claims

    def verify(self, token: str, kind: Kind) -> Claims:
        """Signature, kind and expiry; never raises anything but TokenError, whatever the input."""
        if len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
            raise TokenError("bad_token", "token is not valid")
        prefix, payload, mac = token.split(".")
        if prefix != kind:
            raise TokenError("bad_token", "token is not valid")
        if not hmac.compare_digest(self._mac(kind, payload).encode(), mac.encode("utf-8", "replace")):
            raise TokenError("bad_token", "token is not valid")
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            claims = Claims(**raw)
        except (ValueError, TypeError) as exc:  # signed by us, so this means a format change
            raise TokenError("bad_token", "token is not valid") from exc
        if claims.kind != kind:
            raise TokenError("bad_token", "token is not valid")
        if claims.exp < time.time():
            raise TokenError("token_expired", "token expired")
        return claims

    def _mac(self, kind: str, payload: str) -> str:
        return hmac.new(self._keys[kind], f"{kind}.{payload}".encode(), hashlib.sha256).hexdigest()
