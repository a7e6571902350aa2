"""The body of POST /v1/workspaces/{ws}/messages: one model per message kind, a union tagged by `type`.

A body without `type` is a text message, so `{"to", "text"}` keeps working. Each kind is validated on its
own (its own fields only: an unknown field is 422), and every rule is checked here, before anything is
stored: caption only on the kinds WhatsApp shows one on, exactly one of `media.url` / `media.media_id`,
coordinates in range, bounded lists, distinct poll options, template names and languages by pattern.
A rule's message never quotes the value it refuses (serve_app/errors.py masks what could).

`content()` of each model is the kind's content dict (wa_ray/message_kinds.py): what the record stores and
the senders read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wa_ray.ids import ID_PATTERN, PHONE_PATTERN
from wa_ray.message_kinds import CAPTION_MAX, TEXT_MAX, Kind
from wa_ray.wa_ids import GROUP_ID_PATTERN, LID_PATTERN

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
# ours (msg_...), a WhatsApp Web id (true_1555...@c.us_3EB0...) or a Cloud API wamid (base64 with = + /)
MESSAGE_REF_PATTERN = r"^[A-Za-z0-9_.:@=+/-]{1,200}$"
URL_MAX = 2048
FILENAME_PATTERN = r"^[^/\\\x00-\x1f\x7f]{1,240}$"  # a name, never a path
TEMPLATE_NAME_PATTERN = r"^[a-z0-9_]{1,512}$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$"
# "" or up to 32 code points (the longest ZWJ sequences are ~10) of anything but letters, whitespace and
# control or invisible format characters (the joiner U+200D and the variation selector U+FE0F are part of
# emoji); a pattern, so the published schema says the same as the check
EMOJI_PATTERN = (r"^[^\sA-Za-z\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b\u200c\u200e\u200f\u2028-\u202e"
                 r"\u2060-\u2064\u2066-\u206f\ufeff]{0,32}$")

Priority = Literal["urgent", "high", "normal", "bulk"]


def _unanchored(pattern: str) -> str:
    return pattern.removeprefix("^").removesuffix("$")


# a phone number (either provider), or a WhatsApp id only WhatsApp Web addresses: a group or a @lid
RECIPIENT_PATTERN = "^(?:" + "|".join(_unanchored(p) for p in (PHONE_PATTERN, GROUP_ID_PATTERN, LID_PATTERN)) + ")$"


def _rule(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


class _Common(BaseModel):
    model_config = STRICT
    to: str = Field(pattern=RECIPIENT_PATTERN, description=(
        "recipient: a phone number (E.164 digits without '+'), a group id (`<id>@g.us`) or a `<id>@lid`; "
        "a group or a @lid is sent by WhatsApp Web only, never by the Cloud API"))
    session_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                   description="WhatsApp Web session to send from; default: a connected one")
    priority: Priority = "normal"
    strict: bool = Field(default=False, strict=True, description=(
        "reply from this very session: needs `session_id`; the message never leaves from another session or "
        "provider (no failover), and a session that is not connected now is 409 `session_unavailable`"))

    @model_validator(mode="after")
    def _strict_names_its_session(self) -> _Common:
        if self.strict and not self.session_id:
            raise _rule("strict_needs_session", "strict needs session_id: the session the message must leave from")
        return self

    @property
    def kind(self) -> Kind:
        return Kind(getattr(self, "type"))

    def kind_content(self) -> dict[str, Any]:
        raise NotImplementedError

    def content(self) -> dict[str, Any]:
        content = self.kind_content()
        reply_to = getattr(self, "reply_to", None)
        if reply_to:
            content["reply_to"] = reply_to
        return content

    def text_of(self) -> str:
        """OutboundMessage.text: the text of a text message, the caption of a media one, else ""."""
        return ""


class _Replyable(_Common):
    reply_to: str | None = Field(default=None, pattern=MESSAGE_REF_PATTERN,
                                 description="quote this message: ours (msg_...) or an inbound WhatsApp id")


class TextMessage(_Replyable):
    type: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=TEXT_MAX)
    preview_url: bool = Field(default=False, description="show a preview of the first link")

    def kind_content(self) -> dict[str, Any]:
        return {"text": self.text, "preview_url": self.preview_url}

    def text_of(self) -> str:
        return self.text


class MediaByUrl(BaseModel):
    model_config = STRICT
    url: str = Field(min_length=1, max_length=URL_MAX, description="fetched by the sender through the egress guard")


class MediaById(BaseModel):
    model_config = STRICT
    media_id: str = Field(pattern=ID_PATTERN, description="from POST /v1/workspaces/{ws}/media")


MediaRef = MediaByUrl | MediaById  # exactly one of the two: extra fields are refused


class _Media(_Replyable):
    """Caption and file name are fields only of the kinds that have them, so the schema says it too."""

    media: MediaRef

    def kind_content(self) -> dict[str, Any]:
        return {"media_id": getattr(self.media, "media_id", None), "url": getattr(self.media, "url", None),
                "caption": getattr(self, "caption", None), "filename": getattr(self, "filename", None)}

    def text_of(self) -> str:
        return getattr(self, "caption", None) or ""


Caption = Annotated[str | None, Field(default=None, min_length=1, max_length=CAPTION_MAX)]


class ImageMessage(_Media):
    type: Literal["image"]
    caption: Caption = None


class VideoMessage(_Media):
    type: Literal["video"]
    caption: Caption = None


class AudioMessage(_Media):
    type: Literal["audio"]


class VoiceMessage(_Media):
    """Push-to-talk: an ogg/opus audio shown as a voice note."""

    type: Literal["voice"]


class DocumentMessage(_Media):
    type: Literal["document"]
    caption: Caption = None
    filename: str | None = Field(default=None, pattern=FILENAME_PATTERN, description="the name the recipient sees")


class StickerMessage(_Media):
    type: Literal["sticker"]


class LocationMessage(_Replyable):
    type: Literal["location"]
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    address: str | None = Field(default=None, min_length=1, max_length=512)

    def kind_content(self) -> dict[str, Any]:
        return {"latitude": self.latitude, "longitude": self.longitude, "name": self.name, "address": self.address}


class ContactName(BaseModel):
    model_config = STRICT
    formatted_name: str = Field(min_length=1, max_length=256)
    first_name: str | None = Field(default=None, min_length=1, max_length=128)
    last_name: str | None = Field(default=None, min_length=1, max_length=128)


class ContactPhone(BaseModel):
    model_config = STRICT
    phone: str = Field(pattern=r"^\+?[0-9][0-9 ()-]{2,31}$")
    type: str | None = Field(default=None, pattern=r"^[A-Za-z]{1,16}$")
    wa_id: str | None = Field(default=None, pattern=r"^[0-9]{5,20}$")


class ContactEmail(BaseModel):
    model_config = STRICT
    email: str = Field(pattern=r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,255}$")
    type: str | None = Field(default=None, pattern=r"^[A-Za-z]{1,16}$")


class ContactOrg(BaseModel):
    model_config = STRICT
    company: str = Field(min_length=1, max_length=256)


class Contact(BaseModel):
    model_config = STRICT
    name: ContactName
    phones: list[ContactPhone] = Field(min_length=1, max_length=20)
    emails: list[ContactEmail] | None = Field(default=None, max_length=20)
    org: ContactOrg | None = None


class ContactsMessage(_Replyable):
    type: Literal["contacts"]
    contacts: list[Contact] = Field(min_length=1, max_length=20)

    def kind_content(self) -> dict[str, Any]:
        return {"contacts": [c.model_dump(exclude_none=True) for c in self.contacts]}


class ReactionMessage(_Common):
    """No reply_to: a reaction quotes nothing."""

    type: Literal["reaction"]
    message_id: str = Field(pattern=MESSAGE_REF_PATTERN, description="ours (msg_...) or an inbound WhatsApp id")
    emoji: str = Field(pattern=EMOJI_PATTERN, description='one emoji; "" removes our reaction')

    def kind_content(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "emoji": self.emoji}


class PollMessage(_Replyable):
    type: Literal["poll"]
    name: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=2, max_length=12, json_schema_extra={"uniqueItems": True})
    allow_multiple: bool = False

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len(set(options)) != len(options):
            raise _rule("poll_options", "poll options must be distinct")
        return options

    def kind_content(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "allow_multiple": self.allow_multiple}


TemplateScalar = Annotated[str, Field(max_length=1024)] | int | float | bool
TemplateObject = Annotated[dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")], TemplateScalar],
                           Field(max_length=10, json_schema_extra={"additionalProperties": False})]  # keys by pattern


class TemplateParameter(BaseModel):
    """One Cloud API template parameter: its type and the field of that type, each bounded."""

    model_config = STRICT
    type: Literal["text", "currency", "date_time", "image", "document", "video", "location", "payload", "action",
                  "coupon_code"]
    parameter_name: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$")
    text: str | None = Field(default=None, max_length=1024)
    payload: str | None = Field(default=None, max_length=256)
    coupon_code: str | None = Field(default=None, max_length=64)
    currency: TemplateObject | None = None
    date_time: TemplateObject | None = None
    image: TemplateObject | None = None
    document: TemplateObject | None = None
    video: TemplateObject | None = None
    location: TemplateObject | None = None
    action: TemplateObject | None = None


class TemplateComponent(BaseModel):
    """A Cloud API template component, passed on as given (bounded in number and size)."""

    model_config = STRICT
    type: Literal["header", "body", "button"]
    sub_type: Literal["quick_reply", "url", "copy_code", "flow", "catalog"] | None = None
    index: Annotated[int, Field(ge=0, le=9)] | Annotated[str, Field(pattern=r"^[0-9]$")] | None = None
    parameters: list[TemplateParameter] = Field(default_factory=list, max_length=20)


class TemplateMessage(_Replyable):
    type: Literal["template"]
    name: str = Field(pattern=TEMPLATE_NAME_PATTERN)
    language: str = Field(pattern=LANGUAGE_PATTERN, description="a template language code, e.g. en_US")
    components: list[TemplateComponent] = Field(default_factory=list, max_length=10)

    def kind_content(self) -> dict[str, Any]:
        return {"name": self.name, "language": self.language,
                "components": [c.model_dump(exclude_none=True) for c in self.components]}


_KINDS = frozenset(k.value for k in Kind)


def _kind_of(value: Any) -> str | None:
    """The tag: `type`, "text" when absent; None (a 422 that quotes nothing) for anything else."""
    kind = value.get("type", "text") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _KINDS else None


SendMessage = Annotated[
    Annotated[TextMessage, Tag("text")] | Annotated[ImageMessage, Tag("image")]
    | Annotated[VideoMessage, Tag("video")] | Annotated[AudioMessage, Tag("audio")]
    | Annotated[VoiceMessage, Tag("voice")] | Annotated[DocumentMessage, Tag("document")]
    | Annotated[StickerMessage, Tag("sticker")] | Annotated[LocationMessage, Tag("location")]
    | Annotated[ContactsMessage, Tag("contacts")] | Annotated[ReactionMessage, Tag("reaction")]
    | Annotated[PollMessage, Tag("poll")] | Annotated[TemplateMessage, Tag("template")],
    Discriminator(_kind_of, custom_error_type="unknown_type",
                  custom_error_message="type must be one of the message kinds"),
]
AnySend = (TextMessage | ImageMessage | VideoMessage | AudioMessage | VoiceMessage | DocumentMessage | StickerMessage
           | LocationMessage | ContactsMessage | ReactionMessage | PollMessage | TemplateMessage)
