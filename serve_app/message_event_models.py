"""The payloads of an outgoing message's progress events (SSE `data:` and webhook bodies), as schemas.

A message we send goes `message.queued` (storage/messages.py, when it is accepted), `message.sent`
(the WhatsApp Web sender actors/outbound.py, the Cloud API sender actors/cloud_sender.py, or a Cloud
API status webhook in actors/inbound.py), then `message.ack` with `delivered` and `read` as the phone
reports them (actors/inbound.py), or `message.failed` (serve_app/event_models.py). Acks may overtake
`sent`; every sent message still gets exactly one `message.sent`.

These models document what those publishers send; they are not on the publishing path. Output models:
a field the service adds later is new information, so they allow extra fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from wa_ray.message_kinds import Kind
from wa_ray.serve_app.event_models import Provider, _Envelope, _event_examples, _examples
from wa_ray.serve_app.send_models import Priority

_ID = "msg_5f0c1a2b3c4d5e6f"


class MessageQueuedData(BaseModel):
    model_config = _examples(
        {"message_id": _ID, "to": "15551230001", "priority": "normal", "provider": "webjs", "type": "text"},
        {"message_id": "msg_9a8b7c6d5e4f3a2b", "to": "15551230001", "priority": "high",
         "provider": "meta", "type": "template"})
    message_id: str = Field(description="our id of the message, as POST .../messages answered it")
    to: str = Field(description="the recipient as accepted")
    priority: Priority
    provider: Provider = Field(description="the provider routing picked; a failover may move it later")
    type: Kind = Field(description="the message's kind")


class MessageSentData(BaseModel):
    """WhatsApp accepted the message. `to`, `send_ms` and `failover` come with the sender's own answer;
    a Cloud API status webhook that got there first carries `via: "status_webhook"` instead."""

    model_config = _examples(
        {"message_id": _ID, "wa_message_id": "true_15551230001@c.us_3EB0F1A2B3C4D5E6F7A8", "to": "15551230001",
         "provider": "webjs", "send_ms": 412.37, "failover": False},
        {"message_id": _ID, "wa_message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA==",
         "to": "15551230001", "provider": "meta", "failover": True},
        {"message_id": _ID, "wa_message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA==",
         "provider": "meta", "via": "status_webhook"})
    message_id: str
    wa_message_id: str = Field(description="WhatsApp's id of the sent message; acks and replies name it")
    provider: Provider
    to: str | None = Field(default=None, description="the recipient (absent with `via`)")
    send_ms: float | None = Field(default=None, description="WhatsApp Web only: ms the page took to send")
    failover: bool | None = Field(default=None, description="true when it went by a provider it failed over to")
    via: Literal["status_webhook"] | None = Field(
        default=None, description="set when the Cloud API's status webhook reported the send, not its answer")


class MessageAckData(BaseModel):
    model_config = _examples(
        {"message_id": _ID, "wa_message_id": "true_15551230001@c.us_3EB0F1A2B3C4D5E6F7A8", "status": "delivered",
         "provider": "webjs"},
        {"message_id": _ID, "wa_message_id": "wamid.HBgLMTU1NTEyMzAwMDEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA==",
         "status": "read", "provider": "meta"})
    message_id: str
    wa_message_id: str
    status: Literal["delivered", "read"] = Field(description="`read` follows `delivered` (either may be missed)")
    provider: Provider


class MessageQueuedEvent(_Envelope):
    model_config = _event_examples("message.queued", MessageQueuedData)
    type: Literal["message.queued"]
    data: MessageQueuedData


class MessageSentEvent(_Envelope):
    model_config = _event_examples("message.sent", MessageSentData)
    type: Literal["message.sent"]
    data: MessageSentData


class MessageAckEvent(_Envelope):
    model_config = _event_examples("message.ack", MessageAckData)
    type: Literal["message.ack"]
    data: MessageAckData


MESSAGE_EVENT_MODELS: dict[str, type[_Envelope]] = {
    "message.queued": MessageQueuedEvent,
    "message.sent": MessageSentEvent,
    "message.ack": MessageAckEvent,
}
