"""Media routes: upload a file for later messages, read back a stored one (uploaded, fetched or received).

`POST /v1/workspaces/{ws}/media` takes multipart/form-data with one file field `file`. The body is streamed:
the middleware counts it (413 over UPLOAD_MAX_BYTES plus framing, serve_app/middleware.py STREAMED_BODIES)
without buffering it, the multipart parser hands the file's bytes to the media store as they arrive, and the
store encrypts them chunk by chunk; the plaintext is never written to disk and never held whole.

Signed like every call, but the signature cannot wait for the whole body: the client's X-Content-SHA256
(wa_ray/signing.py sends it) is what the HMAC is checked against before anything is read, and the raw body
is hashed as it streams; a body that does not match its declared digest is deleted and answered 403, so an
upload is stored only if it is exactly what the key signed.

`GET /v1/workspaces/{ws}/media/{id}` streams a media file back to its own workspace (404 for any other: the
store's keys name the workspace). A received media still `pending` (a `lazy` media policy) is downloaded
first, once, under that id (serve_app/lazy_media.py: 502 `media_unavailable` when the provider no longer
has it). A file that fails its integrity check is never served: 410 before the
first byte, or a cut connection (shorter than Content-Length) if a later chunk fails.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from python_multipart.multipart import MultipartParser, parse_options_header

from wa_ray.message_kinds import MEDIA_LIMITS, UPLOAD_MAX_BYTES, base_mimetype
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx, workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import ErrorBody
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.middleware import BodyTooLarge
from wa_ray.storage.media import MediaCorrupt, MediaNotFound, MediaTooLarge

router = APIRouter()

ALLOWED_TYPES = frozenset().union(*(limit.mimetypes for limit in MEDIA_LIMITS.values()))
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_FILENAME_MAX = 240


async def upload_workspace(ws: str, request: Request) -> str:
    """`writable_workspace` for a streamed body: the signature is checked against the declared digest."""
    check_id(ws, "workspace")
    c: AppContext = request.app.state.ctx
    declared = request.headers.get("x-content-sha256")
    if "x-key-id" in request.headers and not (declared and _DIGEST.fullmatch(declared)):
        raise ApiError(401, "unauthenticated", "a signed upload needs X-Content-SHA256 (hex sha256 of the body)")
    who = await c.auth.authenticate(request, body_sha256=declared if "x-key-id" in request.headers else None)
    request.state.principal = who
    if not who.may_access(ws):
        raise ApiError(404, "not_found", "workspace not found")
    if not who.may_write:
        raise ApiError(403, "forbidden", "this key is read-only")
    return ws


class _FilePart:
    """Feeds a multipart body to the parser and collects the bytes of the `file` field as they come."""

    def __init__(self, boundary: bytes) -> None:
        self.filename: str | None = None
        self.mimetype = "application/octet-stream"
        self.found = False  # the file part's headers were parsed
        self.done = False  # ... and its data ended
        self.extra_data = False  # a part that is not `file` had content
        self.pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._current: bytes | None = None
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._hfield, "on_header_value": self._hvalue, "on_header_end": self._hend,
            "on_headers_finished": self._hdone,
        })

    def write(self, data: bytes) -> None:
        self._parser.write(data)

    def finalize(self) -> None:
        self._parser.finalize()

    def _begin(self) -> None:
        self._headers, self._current = {}, None

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _hdone(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name != b"file" or self.found:
            self._current = b"other"
            return
        self._current = b"file"
        self.found = True
        raw_name = options.get(b"filename")
        self.filename = clean_filename(raw_name.decode("utf-8", "replace")) if raw_name else None
        raw_type = self._headers.get(b"content-type")
        if raw_type:
            self.mimetype = base_mimetype(raw_type.decode("latin-1"))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._current == b"file":
            self.pending.append(data[start:end])
        elif end > start:
            self.extra_data = True

    def _end(self) -> None:
        if self._current == b"file":
            self.done = True
        self._current = None


def clean_filename(raw: str) -> str | None:
    """The last path segment, without control characters, at most 240 characters; None when nothing is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return None
    return name[:_FILENAME_MAX]


class MediaOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{
        "media_id": "med_5f2a9c0e7b1d43a8e6f10c2b", "mimetype": "application/pdf", "filename": "invoice-2291.pdf",
        "size": 48213, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "expires_at": 1765086400.0}]}}
    media_id: str
    mimetype: str
    filename: str | None
    size: int
    sha256: str = Field(description="hex, of the file's bytes")
    expires_at: float = Field(description="unix time after which the media is deleted")


_UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "additionalProperties": False,
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "the file; its part's Content-Type is the media's type"}}}}}}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **errors(400, 413, 422),
    415: {"model": ErrorBody, "description": "Not multipart/form-data"},
}


@router.post("/v1/workspaces/{ws}/media", status_code=201, response_model=MediaOut, responses=_UPLOAD_ERRORS,
             openapi_extra={"requestBody": _UPLOAD_BODY})
async def upload_media(request: Request, ws: str = Depends(upload_workspace)) -> JSONResponse:
    c: AppContext = request.app.state.ctx
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a `file` field")
    declared = request.headers.get("x-content-sha256")
    hasher = hashlib.sha256()
    part = _FilePart(boundary)
    body = request.stream()

    async def feed() -> bool:
        """One more piece of the body into the parser; False at its end."""
        try:
            piece = await anext(body)
        except StopAsyncIteration:
            return False
        hasher.update(piece)
        part.write(piece)
        return True

    async def file_bytes() -> AsyncIterator[bytes]:
        while True:
            while part.pending:
                yield part.pending.pop(0)
            if part.done or not await feed():
                return

    try:
        while not part.found:
            if not await feed():
                raise ApiError(422, "validation_error", "the form has no `file` field",
                               {"errors": [{"loc": ["body", "file"], "msg": "field required", "type": "missing"}]})
        if part.mimetype not in ALLOWED_TYPES:
            raise ApiError(422, "media_type_not_allowed", "the file's Content-Type is not one any message kind takes",
                           {"field": "file"})
        info = await c.media.put(ws, file_bytes(), mimetype=part.mimetype, filename=part.filename,
                                 max_bytes=UPLOAD_MAX_BYTES)
        try:
            while await feed():  # the rest of the form: hashed, so the digest covers the whole body
                pass
            part.finalize()
            if not part.done:
                raise ApiError(400, "bad_request", "the multipart body ended inside the file")
            if declared is not None and hasher.hexdigest() != declared:
                raise ApiError(403, "bad_signature", "the body does not match its signed digest")
        except BaseException:
            await c.media.delete(ws, info.media_id)
            raise
    except (BodyTooLarge, MediaTooLarge):
        raise ApiError(413, "body_too_large", f"a media file is at most {UPLOAD_MAX_BYTES} bytes",
                       {"limit_bytes": UPLOAD_MAX_BYTES}) from None
    except ApiError:
        raise
    except Exception as exc:  # the multipart parser's errors: malformed framing
        if type(exc).__module__.startswith("python_multipart"):
            raise ApiError(400, "bad_request", "the multipart body is malformed") from None
        raise
    return JSONResponse(upload_out(info.public()), 201)


def upload_out(public: dict[str, Any]) -> dict[str, Any]:
    return {k: public[k] for k in ("media_id", "mimetype", "filename", "size", "sha256", "expires_at")}


@router.get("/v1/workspaces/{ws}/media/{media_id}", response_class=StreamingResponse, responses={
    200: {"description": "the file's bytes, with its Content-Type", "content": {"application/octet-stream": {}}},
    410: {"model": ErrorBody, "description": "The stored file failed its integrity check"},
    502: {"model": ErrorBody, "description": "A pending received media could not be downloaded from its provider"},
    504: {"model": ErrorBody, "description": "A pending received media's download did not finish in time"}})
async def get_media(media_id: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> StreamingResponse:
    info = await c.lazy_media.resolve(ws, check_id(media_id, "media"))
    if info is None:
        raise ApiError(404, "not_found", "media not found")
    chunks = c.media.chunks(ws, media_id)
    try:
        first = await anext(chunks, b"")
    except MediaNotFound:
        raise ApiError(404, "not_found", "media not found") from None
    except MediaCorrupt:
        raise ApiError(410, "media_unreadable", "the stored media failed its integrity check") from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:  # a later MediaCorrupt cuts the connection short of Content-Length
            yield chunk

    disposition = "attachment"
    if info.filename:
        disposition += f"; filename*=UTF-8''{quote(info.filename, safe='')}"
    return StreamingResponse(body(), media_type=info.mimetype, headers={
        "Content-Length": str(info.size), "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox", "Cache-Control": "private, no-store",
        "X-Media-SHA256": info.sha256,
    })
