"""What the send endpoint checks per message type, and what it records of each in the sent log.

Meta's shapes (developers.facebook.com, "Messages" reference):

* text:      {"body", "preview_url"?}
* image, video, audio, document, sticker: {"id"} (an uploaded media id of this number) or {"link"};
             "caption" on image/video/document, "filename" on document, "voice": true on audio
* location:  {"latitude", "longitude", "name"?, "address"?}
* contacts:  [{"name": {"formatted_name", ...}, "phones"?: [{"phone", "type"?, "wa_id"?}], ...}]
* reaction:  {"message_id", "emoji"}   ("" removes the reaction)
* template:  {"name", "language": {"code"}, "components"?: [...]}
* any type:  "context": {"message_id"} makes it a reply.

A media `id` that is not this number's upload, or a `link` that cannot be fetched, is 131053; the simulator
fetches only loopback links (it never reaches out further, like the rest of the test setup). A WhatsApp
type the Cloud API does not send (a poll) is 131051; a type no one knows is 100 (graph_api.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from wa_ray.simulator.cloud_api import errors
from wa_ray.simulator.cloud_api.errors import GraphError
from wa_ray.simulator.cloud_api.media import MAX_UPLOAD_BYTES, MediaStore
from wa_ray.simulator.cloud_api.templates import Templates, body_parameter_count

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
SUPPORTED_TYPES = ("text", "template", *MEDIA_TYPES, "location", "contacts", "interactive", "reaction")
CAPTIONED = ("image", "video", "document")
NOT_ON_CLOUD_API = frozenset({"poll"})  # WhatsApp has them, the Cloud API does not send them: 131051


@dataclass(frozen=True)
class Checked:
    """What the sent log shows of a message: its kind and the content a test compares with what it sent."""

    kind: str
    content: dict[str, Any]


def _obj(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise errors.invalid_parameter(f"The parameter {name} is required.")
    return value


async def check(raw: dict[str, Any], phone_number_id: str, media: MediaStore, templates: Templates,
                fetch: httpx.AsyncClient) -> Checked:
    kind = str(raw.get("type") or "text")
    if kind not in SUPPORTED_TYPES:  # graph_api refused it already; kept so this check stands on its own
        raise GraphError(errors.UNSUPPORTED_TYPE, details="Message type is not currently supported.")
    content: dict[str, Any]
    if kind == "text":
        text = _obj(raw, "text")
        content = {"body": text.get("body"), "preview_url": bool(text.get("preview_url"))}
    elif kind in MEDIA_TYPES:
        content = await _media(kind, _obj(raw, kind), phone_number_id, media, fetch)
    elif kind == "location":
        loc = _obj(raw, "location")
        try:
            lat, lng = float(loc["latitude"]), float(loc["longitude"])
        except (KeyError, TypeError, ValueError):
            raise errors.invalid_parameter("Param location['latitude'] and location['longitude'] are required.") from None
        content = {"latitude": lat, "longitude": lng, "name": loc.get("name"), "address": loc.get("address")}
    elif kind == "contacts":
        contacts = raw.get("contacts")
        if not isinstance(contacts, list) or not contacts or not all(
                isinstance(c, dict) and isinstance(c.get("name"), dict) and c["name"].get("formatted_name")
                for c in contacts):
            raise errors.invalid_parameter("The parameter contacts['name']['formatted_name'] is required.")
        content = {"contacts": contacts}
    elif kind == "reaction":
        reaction = _obj(raw, "reaction")
        if not isinstance(reaction.get("message_id"), str) or not reaction["message_id"]:
            raise errors.invalid_parameter("The parameter reaction['message_id'] is required.")
        if not isinstance(reaction.get("emoji"), str):
            raise errors.invalid_parameter("The parameter reaction['emoji'] is required.")
        content = {"message_id": reaction["message_id"], "emoji": reaction["emoji"]}
    elif kind == "template":
        template = _obj(raw, "template")
        templates.check(phone_number_id, template)
        content = {"name": template.get("name"), "language": (template.get("language") or {}).get("code"),
                   "body_parameters": _body_texts(template.get("components")),
                   "body_parameter_count": body_parameter_count(template.get("components"))}
    else:  # interactive: present, not modelled
        content = {"interactive": _obj(raw, kind)}
    context = raw.get("context")
    if isinstance(context, dict) and context.get("message_id"):
        content["reply_to"] = str(context["message_id"])
    return Checked(kind, content)


async def _media(kind: str, obj: dict[str, Any], phone_number_id: str, media: MediaStore,
                 fetch: httpx.AsyncClient) -> dict[str, Any]:
    media_id, link = obj.get("id"), obj.get("link")
    if bool(media_id) == bool(link):
        raise errors.invalid_parameter(f"Param {kind} must have exactly one of {kind}['id'] or {kind}['link'].")
    if media_id:
        item = media.usable_by(str(media_id), phone_number_id)
        if item is None:
            raise GraphError(errors.MEDIA_UPLOAD, details=f"Media id {str(media_id)[:40]} is not valid.")
        data, mime_type, filename = item.data, item.mime_type, item.filename
    else:
        data, mime_type = await _fetch_link(str(link), fetch)
        filename = None
    content: dict[str, Any] = {"source": "id" if media_id else "link", "mime_type": mime_type, "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()}
    if media_id:
        content["id"] = str(media_id)
    else:
        content["link"] = str(link)
    if kind in CAPTIONED and obj.get("caption") is not None:
        content["caption"] = obj["caption"]
    if kind == "document":
        content["filename"] = obj.get("filename") or filename
    if kind == "audio":
        content["voice"] = bool(obj.get("voice"))
    return content


async def _fetch_link(link: str, fetch: httpx.AsyncClient) -> tuple[bytes, str]:
    parts = urlsplit(link)
    try:
        loopback = parts.scheme in ("http", "https") and ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if not loopback:
        raise GraphError(errors.MEDIA_UPLOAD, details="The media link could not be downloaded.")
    try:
        async with fetch.stream("GET", link, timeout=10) as response:
            if response.status_code != 200:
                raise GraphError(errors.MEDIA_UPLOAD, details="The media link answered an error.")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_UPLOAD_BYTES:
                    raise GraphError(errors.MEDIA_UPLOAD, details="The media link is too large.")
            mime = response.headers.get("content-type", "application/octet-stream").split(";", 1)[0].strip()
            return bytes(body), mime.lower()
    except httpx.HTTPError:
        raise GraphError(errors.MEDIA_UPLOAD, details="The media link could not be downloaded.") from None


def _body_texts(components: Any) -> list[str]:
    if not isinstance(components, list):
        return []
    for component in components:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            return [str(p.get("text")) for p in component.get("parameters") or [] if isinstance(p, dict)]
    return []
