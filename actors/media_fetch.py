"""The media a sender sends: a stored media id, or a url fetched once into the media store.

`media_for_send` is what both providers' senders call for a media kind. A url is fetched through the
egress guard (a `GuardedClient`: only checked addresses, never a redirect, never a proxy), streamed into
the store (never held whole), cut off as soon as it passes the kind's limit, and its Content-Type checked
against the kind. The sender then records the id it got on the message (`MessageStore.set_media`), so a
retry or a failover sends the stored copy and never fetches again.

Every refusal is a `MediaFailure` with a stable `FailureCode`; its reason is our own words, never the url,
a header or a byte of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from wa_ray.egress import EgressDenied, EgressGuard
from wa_ray.egress_http import GuardedClient, status_class
from wa_ray.message_kinds import MEDIA_LIMITS, FailureCode, Kind, base_mimetype, media_fits
from wa_ray.storage.media import MediaInfo, MediaStore, MediaTooLarge

FETCH_TIMEOUT_S = 120.0  # the whole fetch, however slowly the server trickles
_SNIFF = (  # magic bytes of the image kinds, for servers that say application/octet-stream
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


class MediaFailure(Exception):
    def __init__(self, code: FailureCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def sniff(kind: Kind, first: bytes) -> str | None:
    """The type of an image kind's bytes, when the server would not say."""
    if kind == Kind.STICKER and first[:4] == b"RIFF" and first[8:12] == b"WEBP":
        return "image/webp"
    if kind == Kind.IMAGE:
        for magic, mimetype in _SNIFF:
            if first.startswith(magic):
                return mimetype
    return None


def _filename_of(url: str) -> str | None:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name[:200] or None


async def media_for_send(store: MediaStore, ws: str, kind: Kind | str, content: Mapping[str, Any],
                         client: httpx.AsyncClient | EgressGuard) -> MediaInfo:
    """The stored media this message sends (fetching its url first when it has no media id yet).

    `client` is the sender's `GuardedClient` (or an `EgressGuard`, for which one is made for this fetch).
    """
    kind = Kind(kind)
    media_id = content.get("media_id")
    url = content.get("url")
    if media_id:
        info = await store.info(ws, str(media_id))
        if info is None and url:
            return await media_for_send(store, ws, kind, {**content, "media_id": None}, client)  # fetched once, expired
        if info is None:
            raise MediaFailure(FailureCode.MEDIA_NOT_FOUND, "the media id is unknown or expired")
        refused = media_fits(kind, info.mimetype, info.size)
        if refused is not None:
            raise MediaFailure(FailureCode(refused), _fits_reason(kind, FailureCode(refused)))
        return info
    if not url:
        raise MediaFailure(FailureCode.MEDIA_NOT_FOUND, "the message names no media")
    filename = content.get("filename") or (_filename_of(str(url)) if kind == Kind.DOCUMENT else None)
    if isinstance(client, EgressGuard):
        async with GuardedClient(client, timeout=30.0) as guarded:
            return await _fetch(store, ws, kind, str(url), filename, guarded)
    return await _fetch(store, ws, kind, str(url), filename, client)


def _fits_reason(kind: Kind, code: FailureCode) -> str:
    if code == FailureCode.MEDIA_TOO_LARGE:
        return f"larger than the {MEDIA_LIMITS[kind].max_bytes} bytes a {kind.value} may have"
    return f"not a type a {kind.value} may have"


async def _fetch(store: MediaStore, ws: str, kind: Kind, url: str, filename: str | None,
                 client: httpx.AsyncClient) -> MediaInfo:
    limit = MEDIA_LIMITS[kind]
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
                if not 200 <= response.status_code < 300:
                    raise MediaFailure(FailureCode.MEDIA_FETCH_FAILED,
                                       f"the media url answered {status_class(response.status_code)}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit.max_bytes:
                    raise MediaFailure(FailureCode.MEDIA_TOO_LARGE, _fits_reason(kind, FailureCode.MEDIA_TOO_LARGE))
                body = response.aiter_raw()  # as sent: a compressed answer must not expand past the cap unseen
                first = b""
                async for piece in body:
                    first += piece
                    if len(first) >= 16:
                        break
                mimetype = base_mimetype(response.headers.get("content-type", "application/octet-stream"))
                if mimetype not in limit.mimetypes or (
                        mimetype == "application/octet-stream" and kind != Kind.DOCUMENT):
                    mimetype = sniff(kind, first) or mimetype
                if mimetype not in limit.mimetypes:
                    raise MediaFailure(FailureCode.MEDIA_TYPE_NOT_ALLOWED,
                                       _fits_reason(kind, FailureCode.MEDIA_TYPE_NOT_ALLOWED))
                if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
                    raise MediaFailure(FailureCode.MEDIA_FETCH_FAILED, "the media url answered a compressed body")
                return await store.put(ws, _chain(first, body), mimetype=mimetype, filename=filename,
                                       max_bytes=limit.max_bytes)
    except MediaTooLarge:
        raise MediaFailure(FailureCode.MEDIA_TOO_LARGE, _fits_reason(kind, FailureCode.MEDIA_TOO_LARGE)) from None
    except EgressDenied as denied:
        raise MediaFailure(FailureCode.EGRESS_DENIED, str(denied)) from None
    except TimeoutError:
        raise MediaFailure(FailureCode.MEDIA_FETCH_FAILED, "the media url did not answer in time") from None
    except httpx.HTTPError as exc:
        raise MediaFailure(FailureCode.MEDIA_FETCH_FAILED,
                           f"the media url could not be fetched ({type(exc).__name__})") from None


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for piece in rest:
        yield piece
