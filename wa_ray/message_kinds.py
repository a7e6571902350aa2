"""What a message can be: the kinds, their media limits, which provider sends which, and the stable codes
a kind-specific failure carries. Ground floor: no I/O, nothing of ours imported.

Every layer speaks of a message's content in the same shape, the *content dict* stored as JSON on the
message record (`kind` and `content` fields) and handed to both providers' senders:

* text:      {"text": str, "preview_url": bool}
* image, video, audio, voice, document, sticker:
             {"media_id": str | None, "url": str | None, "caption": str | None, "filename": str | None}
             (exactly one of media_id/url at accept; the sender fetches a url into the media store once
             and records the media id it got on the message, so a retry never fetches again)
* location:  {"latitude": float, "longitude": float, "name": str | None, "address": str | None}
* contacts:  {"contacts": [{"name": {"formatted_name": str, "first_name"?, "last_name"?},
                            "phones": [{"phone": str, "type"?: str, "wa_id"?: str}],
                            "emails"?: [{"email": str, "type"?: str}], "org"?: {"company": str}}]}
             (the Cloud API's shape; the WhatsApp Web side writes each as a vCard 3.0)
* reaction:  {"message_id": str, "emoji": str}       ("" removes our reaction)
* poll:      {"name": str, "options": [str, ...], "allow_multiple": bool}
* template:  {"name": str, "language": str, "components": [...]}   (the Cloud API's components verbatim)

and, on any kind but reaction, `reply_to`: a message id (ours, `msg_...`) or a WhatsApp message id of an
inbound message, kept in the content dict under "reply_to".

Media limits are the Cloud API's (developers.facebook.com, "Supported media types"), applied to both
providers: a message must be able to fail over, and WhatsApp Web's larger limits would let a message in
that the Cloud API then refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"  # push-to-talk: an ogg/opus audio shown as a voice note
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    POLL = "poll"
    TEMPLATE = "template"


MEDIA_KINDS = frozenset({Kind.IMAGE, Kind.VIDEO, Kind.AUDIO, Kind.VOICE, Kind.DOCUMENT, Kind.STICKER})
CAPTION_KINDS = frozenset({Kind.IMAGE, Kind.VIDEO, Kind.DOCUMENT})  # WhatsApp shows no caption on the others
CAPTION_MAX = 1024
TEXT_MAX = 4096

MB = 1024 * 1024


@dataclass(frozen=True)
class MediaLimit:
    max_bytes: int
    mimetypes: frozenset[str]  # the type part before any `;` parameter, lower case


_DOCUMENT_TYPES = frozenset({
    "text/plain", "text/csv", "application/pdf", "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/zip", "application/octet-stream",
})

MEDIA_LIMITS: dict[Kind, MediaLimit] = {
    Kind.IMAGE: MediaLimit(5 * MB, frozenset({"image/jpeg", "image/png"})),
    Kind.VIDEO: MediaLimit(16 * MB, frozenset({"video/mp4", "video/3gpp"})),
    Kind.AUDIO: MediaLimit(16 * MB, frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})),
    Kind.VOICE: MediaLimit(16 * MB, frozenset({"audio/ogg"})),
    Kind.DOCUMENT: MediaLimit(100 * MB, _DOCUMENT_TYPES),
    Kind.STICKER: MediaLimit(500 * 1024, frozenset({"image/webp"})),
}
# The largest thing the media store takes on upload; a kind's own limit is checked when it is sent.
UPLOAD_MAX_BYTES = max(limit.max_bytes for limit in MEDIA_LIMITS.values())


def base_mimetype(value: str) -> str:
    """`image/JPEG; charset=x` -> `image/jpeg`."""
    return value.split(";", 1)[0].strip().lower()


def media_fits(kind: Kind, mimetype: str, size: int) -> str | None:
    """None when `kind` may carry this media; else the FailureCode value that says why not."""
    limit = MEDIA_LIMITS[kind]
    if base_mimetype(mimetype) not in limit.mimetypes:
        return FailureCode.MEDIA_TYPE_NOT_ALLOWED
    if size > limit.max_bytes:
        return FailureCode.MEDIA_TOO_LARGE
    return None


WEBJS_KINDS = frozenset(Kind) - {Kind.TEMPLATE}  # templates exist only on the Cloud API
META_KINDS = frozenset(Kind) - {Kind.POLL}  # the Cloud API has no polls
PROVIDER_KINDS = {"webjs": WEBJS_KINDS, "meta": META_KINDS}


def provider_sends(provider: str, kind: Kind) -> bool:
    return kind in PROVIDER_KINDS.get(provider, frozenset())


class FailureCode(StrEnum):
    """The stable `code` of a kind-specific `message.failed` (and of the 422 at accept where it is known
    then). Clients branch on these; the words of the reason may change."""

    MEDIA_FETCH_FAILED = "media_fetch_failed"  # the url answered an error, or did not answer
    MEDIA_TOO_LARGE = "media_too_large"
    MEDIA_TYPE_NOT_ALLOWED = "media_type_not_allowed"
    MEDIA_NOT_FOUND = "media_not_found"  # the media id expired or never was this workspace's
    EGRESS_DENIED = "egress_denied"
    KIND_NOT_SUPPORTED = "kind_not_supported"  # neither provider that could take it sends this kind
    TARGET_NOT_FOUND = "target_not_found"  # a reaction's (or reply's) message is unknown on this provider
    TEMPLATE_MISSING = "template_missing"  # Cloud API 132001
    TEMPLATE_PARAMS = "template_params"  # Cloud API 132000
