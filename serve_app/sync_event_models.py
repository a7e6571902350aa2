"""The payloads of a history sync's events (actors/session_sync.py), as schemas.

`session.sync` reports progress; `chats.synced`, `contacts.synced` and `messages.synced` carry the
history in batches, every one with the run's `sync_id` (the one `POST .../sync` answered). A chat and a
contact are the conversation models (serve_app/conversation_models.py), a message is the
`message.received` payload plus `from_me`: one shape whichever way a client gets them.

They live here, one floor above event_models.py, because the conversation models import the message
payload from there (serve_app/all_event_models.py gathers every event's model for the OpenAPI
document). Output models: extra fields are allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from wa_ray.serve_app.conversation_models import ChatOut, ContactOut
from wa_ray.serve_app.event_models import (
    MessageReceivedData,
    _Envelope,
    _event_examples,
    _examples,
    _first_example,
)

_SYNC_ID = Field(description="the run's id, as `POST .../sync` answered it (a sync on link has its own)")
_BATCH = Field(ge=1, description="counts from 1 within the run (within the chat for messages)")
_MESSAGE = {**_first_example(ChatOut)["last_message"]}


class SessionSyncData(BaseModel):
    model_config = _examples(
        {"sync_id": "syn_3f9a0c2b7d1e4a6c", "phase": "chats", "done": 100, "total": 500},
        {"sync_id": "syn_3f9a0c2b7d1e4a6c", "phase": "messages", "done": 12, "total": 500},
        {"sync_id": "syn_3f9a0c2b7d1e4a6c", "phase": "done", "done": 500, "total": 500},
        {"sync_id": "syn_3f9a0c2b7d1e4a6c", "phase": "failed", "done": 0, "total": 0, "failed_in": "messages"})
    sync_id: str = _SYNC_ID
    phase: Literal["chats", "contacts", "messages", "done", "failed"] = Field(
        description="`chats`, `contacts`, `messages` in that order, then `done`; `failed` ends a run that "
                    "could not finish (the page went away): a new POST .../sync starts over")
    done: int = Field(ge=0, description="items of the phase published so far (chats, contacts, chats whose "
                                        "messages are out); never goes down within a phase")
    total: int = Field(ge=0, description="items of the phase in this run; `done` ends equal to it")
    failed_in: Literal["chats", "contacts", "messages"] | None = Field(
        default=None, description="with `failed`: the phase the run stopped in")


class ChatsSyncedData(BaseModel):
    model_config = _examples({"sync_id": "syn_3f9a0c2b7d1e4a6c", "batch": 1,
                              "chats": [_first_example(ChatOut)]})
    sync_id: str = _SYNC_ID
    batch: int = _BATCH
    chats: list[ChatOut] = Field(description="newest first, up to 100 per event; at most the policy's "
                                             "`max_chats` in a run")


class ContactsSyncedData(BaseModel):
    model_config = _examples({"sync_id": "syn_3f9a0c2b7d1e4a6c", "batch": 1,
                              "contacts": [_first_example(ContactOut)]})
    sync_id: str = _SYNC_ID
    batch: int = _BATCH
    contacts: list[ContactOut] = Field(description="up to 200 per event")


class MessagesSyncedData(BaseModel):
    model_config = _examples({"sync_id": "syn_3f9a0c2b7d1e4a6c", "batch": 1, "chat_id": "15551230001@c.us",
                              "messages": [_MESSAGE, {**_MESSAGE, "wa_message_id": "3EB0D5E6F7A8B9C0D1E2",
                                                      "from": "15559870000", "to": "15551230001",
                                                      "text": "It ships today.", "from_me": True}]})
    sync_id: str = _SYNC_ID
    batch: int = _BATCH
    chat_id: str = Field(description="the chat these messages belong to")
    messages: list[MessageReceivedData] = Field(
        description="oldest first, up to 100 per event: `message.received` payloads plus `from_me`; a media "
                    "is announced `pending` (fetched on the first GET of its media_id) unless the media "
                    "policy is `off`, and its media_id is the same at every sync")


class SessionSyncEvent(_Envelope):
    model_config = _event_examples("session.sync", SessionSyncData)
    type: Literal["session.sync"]
    data: SessionSyncData


class ChatsSyncedEvent(_Envelope):
    model_config = _event_examples("chats.synced", ChatsSyncedData)
    type: Literal["chats.synced"]
    data: ChatsSyncedData


class ContactsSyncedEvent(_Envelope):
    model_config = _event_examples("contacts.synced", ContactsSyncedData)
    type: Literal["contacts.synced"]
    data: ContactsSyncedData


class MessagesSyncedEvent(_Envelope):
    model_config = _event_examples("messages.synced", MessagesSyncedData)
    type: Literal["messages.synced"]
    data: MessagesSyncedData


SYNC_EVENT_MODELS: dict[str, type[_Envelope]] = {
    "session.sync": SessionSyncEvent,
    "chats.synced": ChatsSyncedEvent,
    "contacts.synced": ContactsSyncedEvent,
    "messages.synced": MessagesSyncedEvent,
}
