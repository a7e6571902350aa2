"""Caller authentication: HMAC-signed requests for services, signed tokens for browsers.

Service callers sign every request (see `wa_ray.signing`): missing headers or
a malformed/expired timestamp -> 401; an unknown or revoked key or a wrong
signature -> 403 (the same answer, so key ids cannot be probed); a nonce seen
in the last 600 s -> 401. Browsers hold only short-lived tokens (`tokens.py`):
a stream token for `EventSource`, or a console token exchanged for an HttpOnly
cookie by the console page. Every authenticated caller is rate limited per key
with a GCRA bucket in Redis (429 with Retry-After); a token spends the budget of
the key that issued it, so minting tokens never multiplies a key's limit (only
tokens of the operator's CLI have a bucket each, TOKEN_RATE). A token is refused
once its key is revoked or re-created (the `gen` claim); a key with allowed
CIDRs refuses signed calls from any other client address (403 `ip_not_allowed`,
audited). `access_ended` re-checks a principal for callers that outlive one
request (the SSE stream).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request

from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.tokens import CLI_ISSUER, Claims, Kind, TokenError, TokenSigner
from wa_ray.crypto import MasterKey
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKey, ApiKeyStore
from wa_ray.storage.batch import Batcher
from wa_ray.storage.ratelimit import RateLimiter, Verdict
from wa_ray.storage.redis_client import RedisClient
from wa_ray.signing import signature_for_digest

WINDOW_S = 300
NONCE_TTL_S = 600
STREAM_TOKEN_TTL_S = 300
TOKEN_RATE: tuple[float, int] = (20.0, 40)  # per CLI-minted token (no key to charge)
CONSOLE_COOKIE = "wa_console"
CONSOLE_HEADER = "x-wa-console"  # required on the console's unsafe calls: a cross-site form cannot set it
_NONCE = re.compile(r"^[\x21-\x7e]{8,128}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DUMMY_SECRET = "wa-ray-no-such-key"


@dataclass(frozen=True)
class Principal:
    key_id: str  # the API key; for a token, the key that issued it ("-" for the CLI)
    role: str
    workspace_id: str | None  # None: every workspace (admin, or a read key without a workspace)
    via: str = "hmac"  # hmac | console | stream
    token_id: str | None = None
    session_id: str | None = None  # a stream token pinned to one session
    expires_at: int | None = None  # tokens only
    key_gen: int = 0  # the key's generation when it signed (hmac) or issued the token

    def may_access(self, ws: str) -> bool:
        if self.role == "admin" and self.workspace_id is None:
            return True
        return self.workspace_id == ws or (self.role == "read" and self.workspace_id is None)

    @property
    def may_write(self) -> bool:
        return self.role in ("admin", "workspace") and self.via != "stream"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and self.workspace_id is None and self.via == "hmac"

    @property
    def who(self) -> str:
        return f"key:{self.key_id}" if self.via == "hmac" else f"{self.via}:{self.key_id}/{self.token_id}"


def signed_target(request: Request) -> str:
    """The path and query exactly as the client sent them (raw, not percent-decoded)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class Authenticator:
    def __init__(self, redis: RedisClient, master: MasterKey, previous: Sequence[MasterKey] = (),
                 batch: Batcher | None = None) -> None:
        self._redis = redis
        self._keys = ApiKeyStore(redis, master, previous, batch=batch)
        self._limiter = RateLimiter(redis, batch=batch)
        self.tokens = TokenSigner(master)

    @property
    def keys(self) -> ApiKeyStore:
        return self._keys

    async def authenticate(self, request: Request, *, stream_token: str | None = None,
                           body_sha256: str | None = None) -> Principal:
        """HMAC headers win; else the console cookie; else (events only) a stream token.

        `body_sha256`: for a body the handler streams (a media upload), the digest the client declared
        (X-Content-SHA256) is what the signature is checked against; the handler must compare it with the
        body it then reads, and discard what it stored when they differ."""
        h = request.headers
        if any(n in h for n in ("x-key-id", "x-signature", "x-timestamp", "x-nonce")):
            return await self.verify(request, body_sha256)
        cookie = request.cookies.get(CONSOLE_COOKIE)
        if cookie:
            if request.method in _UNSAFE and h.get(CONSOLE_HEADER) != "1":
                raise ApiError(403, "csrf", f"console calls must carry the {CONSOLE_HEADER} header")
            return await self.from_token(cookie, "console")
        if stream_token:
            return await self.from_token(stream_token, "stream")
        raise ApiError(401, "unauthenticated", "X-Key-Id, X-Timestamp, X-Nonce and X-Signature are required")

    async def verify(self, request: Request, body_sha256: str | None = None) -> Principal:
        h = request.headers
        key_id, ts, nonce, sig = h.get("x-key-id"), h.get("x-timestamp"), h.get("x-nonce"), h.get("x-signature")
        if not (key_id and ts and nonce and sig):
            raise ApiError(401, "unauthenticated", "X-Key-Id, X-Timestamp, X-Nonce and X-Signature are required")
        if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
            raise ApiError(401, "bad_timestamp", "X-Timestamp must be unix seconds")
        if abs(time.time() - int(ts)) > WINDOW_S:
            raise ApiError(401, "stale_timestamp", f"timestamp outside the +-{WINDOW_S} s window")
        if not _NONCE.fullmatch(nonce):
            raise ApiError(401, "bad_nonce", "X-Nonce must be 8-128 printable ASCII characters")
        key = await self._keys.get(key_id) if len(key_id) <= 64 else None
        digest = body_sha256 if body_sha256 is not None else hashlib.sha256(await request.body()).hexdigest()
        # Computed even for an unknown key, so the answer time does not tell which key ids exist.
        expected = signature_for_digest(key.secret if key else _DUMMY_SECRET, ts, nonce, request.method,
                                        signed_target(request), digest)
        good = hmac.compare_digest(expected.encode(), sig.encode("latin-1")) and bool(_SIG.fullmatch(sig))
        if key is None or not good:
            raise ApiError(403, "bad_signature", "signature does not match")
        # Nonce and rate limit in one script call; the nonce is only burnt by a correctly signed request.
        fresh, rate = await self._limiter.nonce_and_check(key_id, nonce, NONCE_TTL_S, key.rate_per_s, key.burst)
        if not fresh:
            raise ApiError(401, "replayed_nonce", "nonce already used")
        _enforce(rate)
        # After the signature (a wrong address must not tell which key ids exist) and after the rate
        # check (so refusals, each audited, come no faster than the key's own budget).
        if not key.allows(request.client.host if request.client else None):
            # signed by the key, so audited as the key (in the main stream), with the reason
            request.state.principal, request.state.audit_reason = _principal(key), "ip_not_allowed"
            raise ApiError(403, "ip_not_allowed", "this key may not be used from this address")
        return _principal(key)

    async def from_token(self, token: str, kind: Kind) -> Principal:
        try:
            claims = self.tokens.verify(token, kind)
        except TokenError as exc:
            raise ApiError(401 if exc.code == "token_expired" else 403, exc.code, str(exc)) from None
        if claims.kid == CLI_ISSUER:
            # asked at once, not on one pipeline: the limiter's script is never queued on one (storage/ratelimit.py)
            signed_out, rate = await asyncio.gather(self._redis.exists(keys.revoked_token(claims.jti)),
                                                    self._limiter.check(f"token:{claims.jti}", *TOKEN_RATE))
            if signed_out:
                raise ApiError(403, "bad_token", "token was revoked")
            _enforce(rate)
        else:
            signed_out, key = await asyncio.gather(self._redis.exists(keys.revoked_token(claims.jti)),
                                                   self._keys.get(claims.kid))
            if signed_out or key is None or key.generation != claims.gen:
                raise ApiError(403, "bad_token", "token was revoked")
            _enforce(await self._limiter.check_key(key.key_id, key.rate_per_s, key.burst))
        return Principal(claims.kid, claims.role, claims.ws, via=kind, token_id=claims.jti, session_id=claims.sid,
                         expires_at=claims.exp, key_gen=claims.gen)

    async def access_ended(self, who: Principal) -> str | None:
        """Why `who`'s access has ended since it was authenticated, or None while it holds:
        token expired, token signed out, issuing/signing key revoked or re-created."""
        if who.expires_at is not None and who.expires_at < time.time():
            return "token_expired"
        async with self._redis.pipeline(transaction=False) as pipe:
            if who.key_id != CLI_ISSUER:
                pipe.hmget(keys.api_key(who.key_id), "role", "gen")
            if who.token_id:
                pipe.exists(keys.revoked_token(who.token_id))
            replies = await pipe.execute()
        if who.key_id != CLI_ISSUER:
            role, gen = replies.pop(0)
            if role is None or int(gen or 0) != who.key_gen:
                return "key_revoked"
        if who.token_id and replies[0]:
            return "signed_out"
        return None

    def mint(self, kind: Kind, issuer: Principal, ws: str | None, ttl_s: int,
             sid: str | None = None) -> tuple[str, Claims]:
        """A token never grants more than its issuer: same role, same or narrower workspace, and
        only a signed request can mint one (a token cannot extend its own life)."""
        if issuer.via != "hmac":
            raise ApiError(403, "forbidden", "tokens are issued to API keys only")
        if ws is None and issuer.workspace_id is not None:
            ws = issuer.workspace_id
        if ws is not None and not issuer.may_access(ws):
            raise ApiError(404, "not_found", "workspace not found")
        # an admin's token for one workspace is a workspace token: it says what it can do
        role = "workspace" if issuer.role == "admin" and ws is not None else issuer.role
        return self.tokens.mint(kind, ws=ws, role=role, kid=issuer.key_id, ttl_s=ttl_s, sid=sid, gen=issuer.key_gen)

    async def revoke_token(self, principal: Principal) -> None:
        if principal.token_id:
            await self._redis.set(keys.revoked_token(principal.token_id), 1, ex=12 * 3600 + 60)

    # Kept for callers of the walking skeleton's API.
    def issue_stream_token(self, ws: str, ttl_s: int = STREAM_TOKEN_TTL_S) -> tuple[str, int]:
        token, claims = self.tokens.mint("stream", ws=ws, role="read", kid=CLI_ISSUER, ttl_s=ttl_s)
        return token, claims.exp


def _enforce(v: Verdict) -> None:
    if not v.allowed:
        raise ApiError(429, "rate_limited", "too many requests for this key",
                       {"retry_after_s": round(v.retry_after_s, 3)}, headers={"Retry-After": v.retry_after_header})


def _principal(key: ApiKey) -> Principal:
    return Principal(key.key_id, key.role, key.workspace_id, key_gen=key.generation)
