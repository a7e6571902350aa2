"""Received media a workspace's `lazy` policy has not downloaded yet: where to fetch each one from.

At receipt the inbound side allots the media's id (the media store's own scheme, `new_media_id`) and
records here what the provider announced and where the bytes are; `message.received` goes out with that id
and `status: pending`. The first `GET /v1/workspaces/{ws}/media/{id}` downloads it into the media store
under the same id (serve_app/lazy_media.py) and deletes the record.

Invariants:
* A record is keyed by workspace and id, like the media store's metadata: another workspace's id is simply
  not there, so the two are never told apart.
* A record never holds a credential: a Cloud API source is Meta's media id only (the workspace's token is
  read from storage/providers.py when the download happens); a WhatsApp Web source is the session and the
  WhatsApp message id (the page holds the media).
* It lives as long as stored media does (the retention period): an id announced in an event means the same
  thing for as long as it could have been served.
* One download at a time per id: `claim` is a SET NX with a TTL (a crashed holder frees it by expiry) and
  `release` deletes it only for the token that took it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import orjson
import redis.asyncio as aioredis

from wa_ray.ids import is_valid_id
from wa_ray.storage import keys
from wa_ray.storage.media import DEFAULT_RETENTION_S, new_media_id

Source = Literal["cloud_api", "webjs"]
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class PendingMedia:
    media_id: str
    workspace_id: str
    source: Source
    mimetype: str
    filename: str | None
    size: int | None  # what the provider announced
    sha256: str | None  # ditto, hex
    max_bytes: int  # the policy's cap at receipt: the download stops there
    # cloud_api: {"media": Meta's media id}; webjs: {"session_id": sid, "wa_message_id": id}
    locator: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0


def stable_media_id(ws: str, key: str) -> str:
    """A media id of the store's shape (`med_` + 24 hex) derived from the workspace and `key`; ids are
    only ever looked up within their workspace, so knowing the derivation opens nothing of another one."""
    return "med_" + hashlib.sha256(f"{ws}\x00{key}".encode()).hexdigest()[:24]


class PendingMediaStore:
    def __init__(self, redis: aioredis.Redis, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self._redis = redis
        self._retention_s = max(1, int(retention_s))

    async def allot(self, ws: str, *, source: Source, mimetype: str, filename: str | None, size: int | None,
                    sha256: str | None, max_bytes: int, locator: dict[str, str]) -> PendingMedia:
        """A new id for a media not downloaded yet, recorded with where it is."""
        if not is_valid_id(ws):
            raise ValueError("invalid workspace id")
        pending = PendingMedia(new_media_id(), ws, source, mimetype, filename, size, sha256, max_bytes,
                               dict(locator), time.time())
        created = await self._redis.set(keys.media_pending(ws, pending.media_id), orjson.dumps(asdict(pending)),
                                        ex=self._retention_s, nx=True)
        if not created:  # 96 random bits: never in practice, but an id is never handed out twice
            raise RuntimeError("media id collision")
        return pending

    async def allot_stable(self, ws: str, key: str, *, source: Source, mimetype: str, filename: str | None,
                           size: int | None, sha256: str | None, max_bytes: int,
                           locator: dict[str, str]) -> PendingMedia:
        """The id of a media named by `key` (unique within the workspace: the session and WhatsApp message
        id of a page's message), the same at every call: derived from (ws, key), recorded once (SET NX), so
        announcing the same message again (a repeated sync, a listing) names the same media. An id whose
        media was stored meanwhile stays served from the store (it is looked up there first)."""
        if not is_valid_id(ws):
            raise ValueError("invalid workspace id")
        media_id = stable_media_id(ws, key)
        pending = PendingMedia(media_id, ws, source, mimetype, filename, size, sha256, max_bytes, dict(locator),
                               time.time())
        await self._redis.set(keys.media_pending(ws, media_id), orjson.dumps(asdict(pending)),
                              ex=self._retention_s, nx=True)
        return pending

    async def get(self, ws: str, media_id: str) -> PendingMedia | None:
        """None: never allotted, downloaded already, expired, or another workspace's."""
        if not (isinstance(media_id, str) and is_valid_id(ws) and is_valid_id(media_id)):
            return None
        raw = await self._redis.get(keys.media_pending(ws, media_id))
        if raw is None:
            return None
        try:
            pending = PendingMedia(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError):
            return None
        return pending if pending.workspace_id == ws and pending.media_id == media_id else None

    async def done(self, ws: str, media_id: str) -> None:
        """The media is in the store now: the record has served its purpose."""
        await self._redis.delete(keys.media_pending(ws, media_id))

    async def claim(self, ws: str, media_id: str, ttl_s: float) -> str | None:
        """The download lock of one id: a token when taken, None when someone else holds it."""
        token = secrets.token_hex(8)
        taken = await self._redis.set(keys.media_pending_lock(ws, media_id), token, nx=True,
                                      px=max(1, int(ttl_s * 1000)))
        return token if taken else None

    async def held(self, ws: str, media_id: str) -> bool:
        return bool(await self._redis.exists(keys.media_pending_lock(ws, media_id)))

    async def release(self, ws: str, media_id: str, token: str) -> None:
        await self._redis.eval(_RELEASE, 1, keys.media_pending_lock(ws, media_id), token)
