"""A workspace's inbound media policy: whether the media of a received message is downloaded, and up to what size.

`download`: `eager` (the default) downloads a received message's media into the media store before
`message.received` is published, so the event carries a `media_id` the client can fetch at once; `off`
downloads nothing and the event carries the media's description with `media_id: null`; `lazy` downloads
nothing at receipt either, but allots the `media_id` at once (`status: pending`) and remembers where the
media is (storage/media_pending.py): the first `GET .../media/{id}` downloads and stores it. `max_bytes`
caps what is downloaded (default 16 MB, never above the media store's upload cap `UPLOAD_MAX_BYTES`);
a larger media is described, not stored (`status: too_large`).

Stored as JSON under keys.media_policy(ws). Inbound runs on every received message, so reads are cached in
the process for `cache_ttl_s` (5 s by default): a PUT takes effect in the replica that took it at once and
elsewhere within that time. A stored value that is not valid (edited by hand, or written under older
bounds) falls back to the default field by field, so a reader never meets an out-of-range cap.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from wa_ray.message_kinds import MB, UPLOAD_MAX_BYTES
from wa_ray.storage import keys

Download = Literal["eager", "lazy", "off"]
DOWNLOADS: tuple[str, ...] = ("eager", "lazy", "off")
DEFAULT_MAX_BYTES = 16 * MB
MIN_MAX_BYTES = 1
MAX_MAX_BYTES = UPLOAD_MAX_BYTES


@dataclass(frozen=True)
class MediaPolicy:
    download: Download = "eager"
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def eager(self) -> bool:
        return self.download == "eager"

    @property
    def lazy(self) -> bool:
        return self.download == "lazy"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _valid_max_bytes(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_MAX_BYTES <= value <= MAX_MAX_BYTES


def policy_from(raw: Any) -> MediaPolicy:
    """The policy `raw` describes (anything: it comes from Redis); each invalid field is the default's."""
    if not isinstance(raw, dict):
        return MediaPolicy()
    default = MediaPolicy()
    download = raw.get("download")
    max_bytes = raw.get("max_bytes")
    return MediaPolicy(download if download in DOWNLOADS else default.download,  # type: ignore[arg-type]
                       max_bytes if _valid_max_bytes(max_bytes) else default.max_bytes)


class MediaPolicyStore:
    """Per-workspace media policies in Redis, read through a short in-process cache."""

    def __init__(self, redis: aioredis.Redis, cache_ttl_s: float = 5.0) -> None:
        self._redis = redis
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, MediaPolicy]] = {}

    async def get(self, ws: str) -> MediaPolicy:
        hit = self._cache.get(ws)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        policy = await self._read(ws)
        if self._ttl > 0:
            self._cache[ws] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set(self, ws: str, policy: MediaPolicy) -> MediaPolicy:
        """Stores `policy` (checked: a value outside the bounds is a ValueError, nothing stored)."""
        if policy.download not in DOWNLOADS or not _valid_max_bytes(policy.max_bytes):
            raise ValueError("media policy out of bounds")
        await self._redis.set(keys.media_policy(ws), orjson.dumps(policy.to_dict()))
        self._cache.pop(ws, None)
        return policy

    async def _read(self, ws: str) -> MediaPolicy:
        raw = await self._redis.get(keys.media_policy(ws))
        if not raw:
            return MediaPolicy()
        try:
            return policy_from(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return MediaPolicy()
