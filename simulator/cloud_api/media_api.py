"""Meta's media endpoints over the simulator's media store (media.py): upload, retrieve the URL, download,
delete. Only the owning business number's access token may use a media id; any other gets Graph's
"does not exist" answer."""

from __future__ import annotations

import secrets

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from wa_ray.simulator.cloud_api import errors
from wa_ray.simulator.cloud_api.access import access_token, require_access
from wa_ray.simulator.cloud_api.errors import GraphError
from wa_ray.simulator.cloud_api.graph_api import VERSION_RE, graph_error, graph_json
from wa_ray.simulator.cloud_api.media import MAX_UPLOAD_BYTES, MediaItem
from wa_ray.simulator.cloud_api.registry import TokenCheck


def _owner_phone(request: Request, item: MediaItem | None, object_id: str) -> MediaItem:
    """The item when the request's token may use it; Graph's errors otherwise."""
    state = request.app.state.sim
    # An unknown id is checked against no number: a good token then gets the same answer as a foreign id.
    require_access(state.registry, access_token(request), item.phone_number_id if item else "", object_id)
    if item is None:
        raise errors.unknown_object(object_id)
    return item


async def upload_endpoint(request: Request) -> Response:
    state = request.app.state.sim
    version, pnid = request.path_params["version"], request.path_params["phone_number_id"]
    try:
        if not VERSION_RE.match(version):
            raise errors.unknown_path(f"/{version}/")
        require_access(state.registry, access_token(request), pnid)
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:
            raise errors.invalid_parameter("The request must be multipart/form-data.") from None
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp":
            raise errors.invalid_parameter("The parameter messaging_product is required.")
        if not isinstance(upload, UploadFile):
            raise errors.invalid_parameter("The parameter file is required.")
        declared = form.get("type")
        mime_type = declared if isinstance(declared, str) and declared else (upload.content_type or "")
        if not mime_type or "/" not in mime_type:
            raise errors.invalid_parameter("The parameter type is required.")
        data = await upload.read()
        if not data:
            raise GraphError(errors.MEDIA_UPLOAD, details="The uploaded file is empty.")
        if len(data) > MAX_UPLOAD_BYTES:
            raise GraphError(errors.MEDIA_UPLOAD, details="The uploaded file is too large.")
        item = state.media.add(pnid, data, mime_type.split(";", 1)[0].strip().lower(), upload.filename)
        return graph_json({"id": item.id}, version=version)
    except GraphError as error:
        return graph_error(error, version)


async def media_object_endpoint(request: Request) -> Response:
    """GET (the url and metadata) and DELETE of one media id."""
    state = request.app.state.sim
    version, media_id = request.path_params["version"], request.path_params["media_id"]
    try:
        if not VERSION_RE.match(version):
            raise errors.unknown_path(f"/{version}/")
        item = _owner_phone(request, state.media.get(media_id), media_id)
        if request.method == "DELETE":
            state.media.delete(item.id)
            return graph_json({"success": True}, version=version)
        base = str(request.base_url).rstrip("/")
        return graph_json({
            "messaging_product": "whatsapp", "url": f"{base}/_media/{item.id}/{item.nonce}",
            "mime_type": item.mime_type, "sha256": item.sha256, "file_size": len(item.data), "id": item.id,
        }, version=version)
    except GraphError as error:
        return graph_error(error, version)


async def download_endpoint(request: Request) -> Response:
    """The media url: bytes with the owning number's token, 401 without a token, 404 for anything else."""
    state = request.app.state.sim
    item = state.media.get(request.path_params["media_id"])
    if not access_token(request):
        return Response(b"", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="media"'})
    if item is None or not secrets.compare_digest(item.nonce, request.path_params["nonce"]):
        return Response(b"", status_code=404)
    if state.registry.check(access_token(request), item.phone_number_id) is not TokenCheck.OK:
        return Response(b"", status_code=404)
    return Response(item.data, media_type=item.mime_type)
