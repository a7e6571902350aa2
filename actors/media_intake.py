"""A received message's media into the media store, as the workspace's media policy says.

Both inbound normalizers (WhatsApp Web and the Cloud API) describe a received media the same way, the
`media` object of `message.received`:

    {"media_id": str | None, "mimetype": str, "filename": str | None, "size": int | None,
     "sha256": str | None, "status": "stored" | "pending" | "off" | "too_large" | "failed"}

Invariants:
* Nothing is downloaded unless the policy is `eager` and the size the provider announced (if any) fits
  `max_bytes`: `chunks_factory` is called only then, so a policy of `off` or an announced size over the
  cap costs no byte of traffic.
* `lazy` downloads nothing either: `defer` (the normalizer's, which knows where the media is) allots the
  media id and records the source (storage/media_pending.py), and the object says `pending` with that id;
  the first GET of the id downloads it (serve_app/lazy_media.py). A `defer` that fails is `failed`.
* A stream that turns out larger than announced stops at `max_bytes` (the store's own check) and leaves
  nothing stored; so does a download that fails or takes longer than `timeout_s`. `media_id` is set only
  with `status: stored`, and then `size`/`sha256` are what was stored, not what was announced.
* The download stream is closed whatever happens, so the provider's connection is never left open.
* What a remote sender chose (file name, mimetype) is bounded and cleaned before it is stored or published:
  no path separators or control characters, at most 255 characters.
* `failed` carries no reason in the event (a provider's error may name a URL with a token); the log line
  names the workspace and the exception type only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from wa_ray.storage.media import MediaStore, MediaTooLarge
from wa_ray.storage.media_policy import MediaPolicy

log = logging.getLogger(__name__)

Status = Literal["stored", "pending", "off", "too_large", "failed"]
ChunksFactory = Callable[[], Awaitable[AsyncIterator[bytes]]]
# the cleaned description {mimetype, filename, size, sha256} -> the media id allotted for a later download
Deferral = Callable[[dict[str, Any]], Awaitable[str]]
DEFAULT_TIMEOUT_S = 60.0  # the bounded wait before `message.received` is published without the media
NAME_MAX = 255
FALLBACK_MIMETYPE = "application/octet-stream"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_MIMETYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
                       r"(;[ -~]{0,200})?$")


def clean_filename(value: Any) -> str | None:
    """A display name safe to store and show: separators and control characters replaced, bounded."""
    if not isinstance(value, str):
        return None
    name = _UNSAFE.sub("_", value).strip()[:NAME_MAX]
    return name if name.strip("._ ") else None


def clean_mimetype(value: Any) -> str:
    """`type/subtype[; params]` in printable ASCII, else application/octet-stream."""
    if isinstance(value, str) and _MIMETYPE.fullmatch(value.strip()):
        return value.strip()
    return FALLBACK_MIMETYPE


def media_object(status: Status, *, mimetype: str, filename: str | None, size: int | None,
                 sha256: str | None, media_id: str | None = None) -> dict[str, Any]:
    return {"media_id": media_id, "mimetype": mimetype, "filename": filename, "size": size, "sha256": sha256,
            "status": status}


async def intake(store: MediaStore, policy: MediaPolicy, ws: str, *, mimetype: str, filename: str | None,
                 size_hint: int | None, chunks_factory: ChunksFactory, sha256: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, defer: Deferral | None = None,
                 media_id: str | None = None) -> dict[str, Any]:
    """The `media` object of a received message; downloads it into `store` when the policy says so.

    `size_hint`/`sha256`: what the provider announced (None when it did not); they describe the media
    when it is not stored. `chunks_factory` is awaited for the byte stream only when a download happens.
    `media_id`: the id to store it under (None: a new one)."""
    mimetype, filename = clean_mimetype(mimetype), clean_filename(filename)
    announced = size_hint if isinstance(size_hint, int) and not isinstance(size_hint, bool) and size_hint >= 0 else None
    described = {"mimetype": mimetype, "filename": filename, "size": announced,
                 "sha256": sha256 if isinstance(sha256, str) and len(sha256) <= 128 else None}
    if not (policy.eager or policy.lazy):
        return media_object("off", **described)
    if announced is not None and announced > policy.max_bytes:
        return media_object("too_large", **described)
    if policy.lazy:
        return await _deferred(ws, described, defer)
    chunks: AsyncIterator[bytes] | None = None
    try:
        async with asyncio.timeout(timeout_s):
            chunks = await chunks_factory()
            info = await store.put(ws, chunks, mimetype=mimetype, filename=filename, max_bytes=policy.max_bytes,
                                   media_id=media_id)
    except MediaTooLarge:
        return media_object("too_large", **described)
    except Exception as exc:  # noqa: BLE001 - any failure of the download is `failed`; the message still goes out
        log.warning("inbound media of workspace %s not stored: %s", ws, type(exc).__name__)
        return media_object("failed", **described)
    finally:
        await _close(chunks)
    return media_object("stored", mimetype=info.mimetype, filename=info.filename, size=info.size,
                        sha256=info.sha256, media_id=info.media_id)


async def _deferred(ws: str, described: dict[str, Any], defer: Deferral | None) -> dict[str, Any]:
    if defer is None:  # a normalizer that cannot say where the media is: nothing to fetch it from later
        return media_object("failed", **described)
    try:
        media_id = await defer(dict(described))
    except Exception as exc:  # noqa: BLE001 - the message still goes out, described
        log.warning("inbound media of workspace %s not deferred: %s", ws, type(exc).__name__)
        return media_object("failed", **described)
    return media_object("pending", media_id=media_id, **described)


async def _close(chunks: AsyncIterator[bytes] | None) -> None:
    close = getattr(chunks, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # noqa: BLE001 - closing a broken stream must not turn a stored media into a failure
        pass
