"""Caller authentication: HMAC-signed requests for services, stream tokens for browsers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from fastapi import Request

from serve_app.errors import ApiError
from sessions.crypto import MasterKey
from storage import keys
from storage.apikeys import ApiKey, ApiKeyStore
from wa_ray.signing import signature

WINDOW_S = 300
NONCE_TTL_S = 600
STREAM_TOKEN_TTL_S = 300


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    workspace_id: str | None

    def may_access(self, ws: str) -> bool:
        if self.role == "admin":
            return True
        return self.workspace_id == ws or (self.role == "read" and self.workspace_id is None)

    @property
    def may_write(self) -> bool:
        return self.role in ("admin", "workspace")


class Authenticator:
    def __init__(self, redis: aioredis.Redis, master: MasterKey) -> None:
        self._redis = redis
        self._keys = ApiKeyStore(redis, master)
        self._token_key = master.derive("stream-tokens")

    async def verify(self, request: Request) -> Principal:
        h = request.headers
        key_id, ts, nonce, sig = h.get("x-key-id"), h.get("x-timestamp"), h.get("x-nonce"), h.get("x-signature")
        if not (key_id and ts and nonce and sig):
            raise ApiError(401, "unauthenticated", "X-Key-Id, X-Timestamp, X-Nonce and X-Signature are required")
        try:
            skew = abs(time.time() - int(ts))
        except ValueError:
            raise ApiError(401, "bad_timestamp", "X-Timestamp must be unix seconds") from None
        if skew > WINDOW_S:
            raise ApiError(401, "stale_timestamp", f"timestamp outside the +-{WINDOW_S} s window")
        key = await self._keys.get(key_id)
        body = await request.body()
        path_query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        expected = signature(key.secret if key else "", ts, nonce, request.method, path_query, body)
        if key is None or not hmac.compare_digest(expected, sig):
            raise ApiError(403, "bad_signature", "signature does not match")
        if len(nonce) > 128 or not await self._redis.set(keys.nonce(key_id, nonce), 1, nx=True, ex=NONCE_TTL_S):
            raise ApiError(401, "replayed_nonce", "nonce already used")
        return _principal(key)

    def issue_stream_token(self, ws: str, ttl_s: int = STREAM_TOKEN_TTL_S) -> tuple[str, int]:
        exp = int(time.time()) + ttl_s
        payload = base64.urlsafe_b64encode(orjson.dumps({"ws": ws, "exp": exp})).rstrip(b"=")
        mac = hmac.new(self._token_key, payload, hashlib.sha256).hexdigest()
        return f"{payload.decode()}.{mac}", exp

    def verify_stream_token(self, token: str, ws: str) -> Principal:
        payload, _, mac = token.partition(".")
        good = hmac.new(self._token_key, payload.encode(), hashlib.sha256).hexdigest()
        if not mac or not hmac.compare_digest(good, mac):
            raise ApiError(403, "bad_token", "stream token is not valid")
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if claims["exp"] < time.time():
            raise ApiError(401, "token_expired", "stream token expired")
        if claims["ws"] != ws:
            raise ApiError(404, "not_found", "workspace not found")
        return Principal("stream-token", "read", ws)


def _principal(key: ApiKey) -> Principal:
    return Principal(key.key_id, key.role, key.workspace_id)
