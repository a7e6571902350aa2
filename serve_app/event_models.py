"""The payloads of the message events a client receives (SSE `data:` and webhook bodies), as schemas.

Every event is the same envelope, `{id, type, workspace_id, session_id, ts, data}`; `type` says which
`data` follows. For `message.received`, `data.kind` tells the payloads apart: `text`, a media kind
(`image`, `video`, `audio`, `voice`, `document`, `sticker`), `location`, `contacts`, `poll`, or `unknown`
(a kind we do not model yet; `type` keeps the provider's raw type). Any of them may quote a message:
`reply_to`. Reactions, revokes and edits are events of their own.

These models document what the inbound normalizers publish (actors/inbound_webjs.py,
actors/inbound_cloud.py); they are not on the publishing path. They are output models: a field the
service adds later is new information, not an error, so they allow extra fields.
Installed into the OpenAPI document by serve_app/openapi.py (components/schemas and `webhooks`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wa_ray.message_kinds import FailureCode

Provider = Literal["webjs", "meta"]
MediaKind = Literal["image", "video", "audio", "voice", "document", "sticker"]
_OUT = {"extra": "allow", "populate_by_name": True}


def _examples(*values: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", populate_by_name=True, json_schema_extra={"examples": list(values)})


# -- parts of message.received ----------------------------------------------------------------------

class InboundMedia(BaseModel):
    """A received media: described always, stored as the workspace's media policy says."""

    model_config = ConfigDict(**_OUT)
    media_id: str | None = Field(description="set when status is `stored` or `pending`: "
                                             "GET /v1/workspaces/{ws}/media/{media_id}")
    mimetype: str | None
    filename: str | None = Field(description="the sender's file name (documents), cleaned; else null")
    size: int | None = Field(description="bytes: of what was stored, else what the provider announced (or null)")
    sha256: str | None = Field(description="hex SHA-256 of the bytes (the stored ones when stored)")
    status: Literal["stored", "pending", "off", "too_large", "failed"] = Field(
        description="`stored`: media_id is set; `pending`: media_id is set but not downloaded yet (a `lazy` "
                    "media policy: the first GET downloads it, 502 `media_unavailable` if the provider no "
                    "longer has it); `off`: the media policy downloads nothing; `too_large`: over "
                    "the policy's max_bytes; `failed`: the download failed or took too long")


class InboundLocation(BaseModel):
    model_config = ConfigDict(**_OUT)
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class InboundContactName(BaseModel):
    model_config = ConfigDict(**_OUT)
    formatted_name: str | None


class InboundContactPhone(BaseModel):
    model_config = ConfigDict(**_OUT)
    phone: str | None
    wa_id: str | None = Field(default=None, description="the number's WhatsApp id when WhatsApp knows it")


class InboundContact(BaseModel):
    model_config = ConfigDict(**_OUT)
    name: InboundContactName
    phones: list[InboundContactPhone]
    vcard: str | None = Field(description="the vCard as received (WhatsApp Web); null on the Cloud API")


class ReplyTo(BaseModel):
    model_config = ConfigDict(**_OUT)
    wa_message_id: str = Field(description="the WhatsApp id of the quoted message")
    message_id: str | None = Field(description="our msg_... id when the quoted message is one we sent, else null")


class ReceivedCommon(BaseModel):
    """What every `message.received` carries, whatever its kind."""

    model_config = ConfigDict(**_OUT)
    wa_message_id: str = Field(description="WhatsApp's id of this message; the dedupe key")
    from_: str | None = Field(alias="from", description=(
        "the sender's phone number, digits only; in a group the member who wrote it. Null when WhatsApp names "
        "the sender only by a `@lid` whose number the session does not know (never a number made from it)"))
    chat_id: str = Field(description="the chat: `<number>@c.us`, `<id>@g.us` for a group, or `<id>@lid`")
    from_id: str | None = Field(default=None, description=(
        "the sender's WhatsApp id as reported: `<number>@c.us` or an opaque `<id>@lid`"))
    author: str | None = Field(description=(
        "in a group, the member who wrote it: `<number>@c.us` where the session knows the number, else its "
        "`@lid`; null in a one-to-one chat"))
    is_group: bool = Field(default=False, description="true when the chat is a group")
    to: str | None = Field(description="the receiving number (ours)")
    type: str | None = Field(description="the provider's raw type (e.g. `chat`, `image`, `ptt`); use `kind`")
    timestamp: int | None = Field(description="unix seconds, as the provider stamped it")
    provider: Provider
    name: str | None = Field(default=None, description="the sender's profile name (Cloud API only)")
    reply_to: ReplyTo | None = Field(default=None, description="present when this message quotes another")


_BASE = {"wa_message_id": "3EB0C431D5A9F1E2B7A4", "from": "15551230001", "chat_id": "15551230001@c.us",
         "from_id": "15551230001@c.us", "author": None, "is_group": False, "to": "15559870000",
         "timestamp": 1765000000, "provider": "webjs"}
_GROUP = {**_BASE, "wa_message_id": "false_120363012345678901@g.us_3EB0D1E2F3A4B5C6D7E8_15551230001@c.us",
          "chat_id": "120363012345678901@g.us", "author": "15551230001@c.us", "is_group": True}
_LID = {**_BASE, "wa_message_id": "false_123456789012345@lid_3EB0E1F2A3B4C5D6E7F8", "from": None,
        "chat_id": "123456789012345@lid", "from_id": "123456789012345@lid"}
_CLOUD = {"wa_message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgASGBQzRUIwQzQzMUQ1QTlGMUUyQjdBNAA=",
          "from": "15551230001", "chat_id": "15551230001@c.us", "from_id": "15551230001@c.us", "author": None,
          "is_group": False, "to": "15559870000",
          "timestamp": 1765000000, "provider": "meta", "name": "Ana Souza"}


class TextReceived(ReceivedCommon):
    model_config = _examples(
        {**_BASE, "kind": "text", "type": "chat", "text": "Hi, is my order on its way?"},
        {**_GROUP, "kind": "text", "type": "chat", "text": "Can someone confirm the delivery date?"},
        {**_LID, "kind": "text", "type": "chat", "text": "Hello from a number you have not saved"},
        {**_CLOUD, "kind": "text", "type": "chat", "text": "Yes, that one",
         "reply_to": {"wa_message_id": "wamid.HBgLMTU1NTk4NzAwMDA=", "message_id": "msg_5f0c1a2b3c4d5e6f"}})
    kind: Literal["text"]
    text: str | None = Field(description="the text (null only when the provider sent none)")


class MediaReceived(ReceivedCommon):
    """An image, video, audio, voice note, document or sticker; `text` is the caption (image, video and
    document carry one) or null."""

    model_config = _examples(
        {**_BASE, "kind": "image", "type": "image", "text": "the broken part",
         "media": {"media_id": "med_5f2a9c0e7b1d43a8e6f10c2b", "mimetype": "image/jpeg", "filename": None,
                   "size": 184320, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                   "status": "stored"}},
        {**_CLOUD, "kind": "document", "type": "document", "text": "invoice attached",
         "media": {"media_id": "med_0c4e6a8b2d1f3e5a7c9b0d2e", "mimetype": "application/pdf",
                   "filename": "invoice-2291.pdf", "size": 92811,
                   "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "status": "stored"}},
        {**_BASE, "kind": "voice", "type": "ptt", "text": None,
         "media": {"media_id": None, "mimetype": "audio/ogg; codecs=opus", "filename": None, "size": 23104,
                   "sha256": None, "status": "off"}},
        {**_CLOUD, "kind": "image", "type": "image", "text": None,
         "media": {"media_id": "med_3b5d7f9a1c2e4a6b8d0f1e3c", "mimetype": "image/png", "filename": None,
                   "size": None, "sha256": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
                   "status": "pending"}},
        {**_BASE, "kind": "video", "type": "video", "text": None,
         "media": {"media_id": None, "mimetype": "video/mp4", "filename": None, "size": 41943040,
                   "sha256": None, "status": "too_large"}},
        {**_CLOUD, "kind": "audio", "type": "audio", "text": None,
         "media": {"media_id": None, "mimetype": "audio/mpeg", "filename": None, "size": None,
                   "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", "status": "failed"}},
        {**_BASE, "kind": "sticker", "type": "sticker", "text": None,
         "media": {"media_id": "med_7a1c3e5b9d0f2a4c6e8b1d3f", "mimetype": "image/webp", "filename": None,
                   "size": 18022, "sha256": "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8",
                   "status": "stored"}})
    kind: MediaKind
    text: str | None = Field(description="the caption, or null")
    media: InboundMedia


class LocationReceived(ReceivedCommon):
    model_config = _examples(
        {**_BASE, "kind": "location", "type": "location", "text": None,
         "location": {"latitude": -23.5613, "longitude": -46.6565, "name": "Av. Paulista, 1578",
                      "address": "Bela Vista, São Paulo - SP"}})
    kind: Literal["location"]
    text: str | None = None
    location: InboundLocation | None = Field(description="null when the provider's location was malformed")


class ContactsReceived(ReceivedCommon):
    model_config = _examples(
        {**_BASE, "kind": "contacts", "type": "vcard", "text": None,
         "contacts": [{"name": {"formatted_name": "Bruno Lima"},
                       "phones": [{"phone": "+55 11 91234-5678", "wa_id": "5511912345678"}],
                       "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Bruno Lima\n"
                                "TEL;type=CELL;waid=5511912345678:+55 11 91234-5678\nEND:VCARD"}]})
    kind: Literal["contacts"]
    text: str | None = None
    contacts: list[InboundContact] | None = Field(
        description="one per card; null when the provider's cards were malformed")


class PollReceived(ReceivedCommon):
    """A poll was created in the chat (WhatsApp Web); its question and options are not carried yet."""

    model_config = _examples({**_BASE, "kind": "poll", "type": "poll_creation", "text": None})
    kind: Literal["poll"]
    text: str | None = None


class UnknownReceived(ReceivedCommon):
    """A kind not modelled yet (a poll vote, a call log, ...): `type` is the provider's raw type."""

    model_config = _examples({**_BASE, "kind": "unknown", "type": "call_log", "text": None})
    kind: Literal["unknown"]
    text: str | None = None


MessageReceivedData = Annotated[
    TextReceived | MediaReceived | LocationReceived | ContactsReceived | PollReceived | UnknownReceived,
    Field(discriminator="kind")]


# -- the other message events -----------------------------------------------------------------------

class MessageReactionData(BaseModel):
    model_config = _examples(
        {"wa_message_id": "3EB0A1B2C3D4E5F6A7B8", "target_wa_message_id": "3EB0C431D5A9F1E2B7A4",
         "target_message_id": "msg_5f0c1a2b3c4d5e6f", "emoji": "👍", "from": "15551230001",
         "provider": "webjs"},
        {"wa_message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgARGBI=", "target_wa_message_id": "wamid.HBgLMTU1NTk4NzAwMDA=",
         "target_message_id": None, "emoji": "", "from": "15551230001", "provider": "meta"})
    wa_message_id: str
    target_wa_message_id: str | None = Field(description="the WhatsApp id of the message reacted to")
    target_message_id: str | None = Field(description="our msg_... id when we sent that message, else null")
    emoji: str = Field(description='the reaction; "" means the reaction was removed')
    from_: str | None = Field(alias="from")
    provider: Provider


class MessageRevokedData(BaseModel):
    model_config = _examples({"wa_message_id": "3EB0C431D5A9F1E2B7A4", "message_id": None, "from": "15551230001",
                              "provider": "webjs"})
    wa_message_id: str = Field(description="the WhatsApp id of the message deleted for everyone")
    message_id: str | None = Field(description="our msg_... id when it was one of ours, else null")
    from_: str | None = Field(alias="from")
    provider: Provider


class MessageEditedData(BaseModel):
    model_config = _examples({"wa_message_id": "3EB0C431D5A9F1E2B7A4", "message_id": None,
                              "text": "Hi, is my order (#2291) on its way?", "from": "15551230001",
                              "provider": "webjs"})
    wa_message_id: str = Field(description="the WhatsApp id of the edited message")
    message_id: str | None
    text: str | None = Field(description="the new text")
    from_: str | None = Field(alias="from")
    provider: Provider


class MessageFailedData(BaseModel):
    """A message of ours that will not be delivered. Branch on `error` (stable); `reason` is for people."""

    model_config = _examples(
        {"message_id": "msg_5f0c1a2b3c4d5e6f", "reason": "media: larger than 5242880 bytes for image",
         "provider": "webjs", "code": None, "error": "media_too_large"},
        {"message_id": "msg_9a8b7c6d5e4f3a2b", "reason": "meta 132001: template name does not exist",
         "provider": "meta", "code": 132001, "error": "template_missing",
         "first_error": "webjs: session disconnected"})
    message_id: str
    reason: str
    provider: Provider
    code: int | None = Field(default=None, description="the provider's numeric error code, when it gave one")
    error: FailureCode | None = Field(default=None, description="our stable code when the failure has one")
    first_error: str | None = Field(default=None, description="why the first provider failed, after a failover")


# -- session events ----------------------------------------------------------------------------------

class SessionPairingCodeData(BaseModel):
    """A session created with `login: "code"` publishes this instead of `session.qr`: the code to enter on
    the phone (WhatsApp > Linked devices > Link with phone number). A new one follows every `expires_in`
    seconds while the device is not linked, up to a limit; then the session fails as a QR timeout does."""

    model_config = _examples({"code": "K7PM3QXD", "expires_in": 180, "seq": 1})
    code: str = Field(pattern=r"^[A-Z0-9]{8}$", description="the 8-character pairing code")
    expires_in: int = Field(description="seconds the code stays valid")
    seq: int = Field(ge=1, description="1 for the first code of a login, counting up with each renewal")


# -- envelopes ---------------------------------------------------------------------------------------

class _Envelope(BaseModel):
    model_config = ConfigDict(**_OUT)
    id: str = Field(description="the event's stream id; resume SSE with Last-Event-ID")
    workspace_id: str
    session_id: str | None = Field(description="the WhatsApp Web session, null for the Cloud API")
    ts: float = Field(description="unix seconds, when the event was published")


def _envelope(event_type: str, data: dict[str, Any], session_id: str | None = "support-1") -> dict[str, Any]:
    return {"id": "1765000000123-0", "type": event_type, "workspace_id": "acme", "session_id": session_id,
            "ts": 1765000000.123, "data": data}


def _first_example(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


def _event_examples(event_type: str, *data_models: type[BaseModel],
                    session_id: str | None = "support-1") -> ConfigDict:
    """An envelope's config: one example envelope per data model, carrying that model's first example, so
    an event's examples are its payload's and cannot drift from them. `session_id=None` for a
    workspace-wide event."""
    return ConfigDict(**_OUT, json_schema_extra={"examples": [
        _envelope(event_type, _first_example(m), session_id) for m in data_models]})


class MessageReceivedEvent(_Envelope):
    model_config = _event_examples("message.received", TextReceived, MediaReceived, LocationReceived,
                                   ContactsReceived, PollReceived, UnknownReceived)
    type: Literal["message.received"]
    data: MessageReceivedData


class MessageReactionEvent(_Envelope):
    model_config = _event_examples("message.reaction", MessageReactionData)
    type: Literal["message.reaction"]
    data: MessageReactionData


class MessageRevokedEvent(_Envelope):
    model_config = _event_examples("message.revoked", MessageRevokedData)
    type: Literal["message.revoked"]
    data: MessageRevokedData


class MessageEditedEvent(_Envelope):
    model_config = _event_examples("message.edited", MessageEditedData)
    type: Literal["message.edited"]
    data: MessageEditedData


class MessageFailedEvent(_Envelope):
    model_config = _event_examples("message.failed", MessageFailedData)
    type: Literal["message.failed"]
    data: MessageFailedData


class SessionPairingCodeEvent(_Envelope):
    model_config = _event_examples("session.pairing_code", SessionPairingCodeData)
    type: Literal["session.pairing_code"]
    data: SessionPairingCodeData


# event type -> the envelope model that documents it
EVENT_MODELS: dict[str, type[_Envelope]] = {
    "message.received": MessageReceivedEvent,
    "message.reaction": MessageReactionEvent,
    "message.revoked": MessageRevokedEvent,
    "message.edited": MessageEditedEvent,
    "message.failed": MessageFailedEvent,
    "session.pairing_code": SessionPairingCodeEvent,
}
# message.received's kind -> the model of its `data`
RECEIVED_MODELS: dict[str, type[ReceivedCommon]] = {
    "text": TextReceived, **{k: MediaReceived for k in ("image", "video", "audio", "voice", "document", "sticker")},
    "location": LocationReceived, "contacts": ContactsReceived, "poll": PollReceived, "unknown": UnknownReceived,
}
