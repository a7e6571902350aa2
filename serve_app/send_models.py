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

import unicodedata
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wa_ray.ids import ID_PATTERN, PHONE_PATTERN
from wa_ray.message_kinds import CAPTION_MAX, TEXT_MAX, Kind

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
# ours (msg_...), a WhatsApp Web id (true_1555...@c.us_3EB0...) or a Cloud API wamid (base64 with = + /)
MESSAGE_REF_PATTERN = r"^[A-Za-z0-9_.:@=+/-]{1,200}$"
URL_MAX = 2048
FILENAME_PATTERN = r"^[^/\\\x00-\x1f\x7f]{1,240}$"  # a name, never a path
TEMPLATE_NAME_PATTERN = r"^[a-z0-9_]{1,512}$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$"
TEMPLATE_PARAMETER_MAX_BYTES = 4096
EMOJI_MAX = 32  # code points: the longest ZWJ sequences are ~10

Priority = Literal["urgent", "high", "normal", "bulk"]


def _rule(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


class _Common(BaseModel):
    model_config = STRICT
    to: str = Field(pattern=PHONE_PATTERN, description="recipient, E.164 digits without '+'")
    session_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                   description="WhatsApp Web session to send from; default: a connected one")
    priority: Priority = "normal"

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


class MediaRef(BaseModel):
    model_config = STRICT
    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX,
                            description="fetched by the sender through the egress guard")
    media_id: str | None = Field(default=None, pattern=ID_PATTERN, description="from POST .../media")

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaRef:
        if (self.url is None) == (self.media_id is None):
            raise _rule("media_ref", "give exactly one of url and media_id")
        return self


class _Media(_Replyable):
    media: MediaRef
    caption: str | None = Field(default=None, min_length=1, max_length=CAPTION_MAX,
                                description="image, video and document only")
    filename: str | None = Field(default=None, pattern=FILENAME_PATTERN, description="document only")

    @model_validator(mode="after")
    def _kind_fields(self) -> _Media:
        from wa_ray.message_kinds import CAPTION_KINDS

        if self.caption is not None and self.kind not in CAPTION_KINDS:
            raise _rule("caption_not_allowed", "caption is only allowed on image, video and document")
        if self.filename is not None and self.kind != Kind.DOCUMENT:
            raise _rule("filename_not_allowed", "filename is only allowed on document")
        return self

    def kind_content(self) -> dict[str, Any]:
        return {"media_id": self.media.media_id, "url": self.media.url, "caption": self.caption,
                "filename": self.filename}

    def text_of(self) -> str:
        return self.caption or ""


class ImageMessage(_Media):
    type: Literal["image"]


class VideoMessage(_Media):
    type: Literal["video"]


class AudioMessage(_Media):
    type: Literal["audio"]


class VoiceMessage(_Media):
    type: Literal["voice"]


class DocumentMessage(_Media):
    type: Literal["document"]


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
    emoji: str = Field(max_length=EMOJI_MAX, description='one emoji; "" removes our reaction')

    @field_validator("emoji")
    @classmethod
    def _one_emoji(cls, value: str) -> str:
        if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200d\ufe0f"
               or ch.isascii() and ch.isalpha() for ch in value):
            raise _rule("emoji", "emoji must be a single emoji or empty")
        return value

    def kind_content(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "emoji": self.emoji}


class PollMessage(_Replyable):
    type: Literal["poll"]
    name: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=2, max_length=12)
    allow_multiple: bool = False

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len({o.strip().casefold() for o in options}) != len(options):
            raise _rule("poll_options", "poll options must be distinct")
        return options

    def kind_content(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "allow_multiple": self.allow_multiple}


class TemplateComponent(BaseModel):
    """A Cloud API template component, passed verbatim; its parameters bounded in number and size."""

    model_config = STRICT
    type: Literal["header", "body", "button"]
    sub_type: Literal["quick_reply", "url", "copy_code", "flow", "catalog"] | None = None
    index: Annotated[int, Field(ge=0, le=9)] | Annotated[str, Field(pattern=r"^[0-9]$")] | None = None
    parameters: list[dict[str, Any]] = Field(default_factory=list, max_length=20)

    @field_validator("parameters")
    @classmethod
    def _bounded(cls, parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for p in parameters:
            if not isinstance(p.get("type"), str) or len(orjson.dumps(p)) > TEMPLATE_PARAMETER_MAX_BYTES:
                raise _rule("template_parameter",
                            f"each parameter needs a type and at most {TEMPLATE_PARAMETER_MAX_BYTES} bytes")
        return parameters


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
