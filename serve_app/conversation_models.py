"""The conversation shapes a client reads: a chat, a contact, a group participant, and their pages.

One model each, used by the live listings (serve_app/conversations_api.py) and by the sync events
(`chats.synced`, `contacts.synced`): Laravel stores a chat or a contact the same way whichever way it came.
A message inside them is the `message.received` payload (event_models.MessageReceivedData) plus
`from_me`, so a listed or synced message and a received one are one shape.

Output models: a field added later is new information, not an error, so they allow extra fields.
Ids are WhatsApp ids as the page reports them (`<number>@c.us`, `<id>@g.us`, `<n>@lid`); a number is
only ever derived from a `@c.us` id or a phone the page itself knows, never made from a `@lid`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.event_models import MessageReceivedData


def _examples(*values: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="allow", populate_by_name=True, json_schema_extra={"examples": list(values)})


_CHAT = {"id": "15551230001@c.us", "name": "Ana Souza", "is_group": False, "unread_count": 2,
         "archived": False, "pinned": False, "muted": False, "read_only": False, "timestamp": 1765000000,
         "last_message": {"wa_message_id": "3EB0C431D5A9F1E2B7A4", "from": "15551230001",
                          "chat_id": "15551230001@c.us", "author": None, "to": "15559870000",
                          "timestamp": 1765000000, "provider": "webjs", "kind": "text", "type": "chat",
                          "text": "Hi, is my order on its way?", "from_me": False}}
_GROUP = {**_CHAT, "id": "120363041234567890@g.us", "name": "Support team", "is_group": True, "unread_count": 0,
          "last_message": None}
_PARTICIPANTS = [{"id": "15551230001@c.us", "number": "15551230001", "is_admin": True, "is_super_admin": False},
                 {"id": "208715423957035@lid", "number": None, "is_admin": False, "is_super_admin": False}]
_CONTACT = {"id": "15551230001@c.us", "number": "15551230001", "name": "Ana Souza", "short_name": "Ana",
            "push_name": "Ana", "is_business": False, "is_enterprise": False, "is_my_contact": True,
            "is_blocked": False, "verified_name": None, "profile_picture_url": None}


class ChatOut(BaseModel):
    """A chat as the linked WhatsApp Web page holds it (what whatsapp-web.js getChats reports)."""

    model_config = _examples(_CHAT, _GROUP)
    id: str = Field(description="the chat's WhatsApp id: `<number>@c.us`, `<id>@g.us` (group) or `<n>@lid`")
    name: str | None = Field(description="the chat's title as the page shows it (contact name, push name, "
                                         "group subject or the number)")
    is_group: bool
    unread_count: int = Field(description="messages not read yet on this number (-1: marked unread)")
    archived: bool
    pinned: bool
    muted: bool
    read_only: bool = Field(default=False, description="true when this number cannot write to the chat")
    timestamp: int | None = Field(description="unix seconds of the chat's last activity")
    last_message: MessageReceivedData | None = Field(
        default=None, description="the chat's last message as a `message.received` payload plus `from_me`; "
                                  "null when the page holds none")


class GroupOut(ChatOut):
    """A group chat with its participant count (`GET .../groups`)."""

    model_config = _examples({**_GROUP, "participants_count": 12})

    participants_count: int = Field(description="members of the group as the page knows them")


class ParticipantOut(BaseModel):
    model_config = _examples(*_PARTICIPANTS)
    id: str = Field(description="the member's WhatsApp id; a `@lid` whose phone the page does not know "
                                "stays a `@lid`")
    number: str | None = Field(description="the member's phone number, digits, when known; never made "
                                           "from a `@lid`")
    is_admin: bool
    is_super_admin: bool


class ContactOut(BaseModel):
    """A contact as the page knows it (what whatsapp-web.js getContacts / getContactById report)."""

    model_config = _examples(_CONTACT, {**_CONTACT, "id": "208715423957035@lid", "number": None,
                                        "name": None, "short_name": None, "push_name": "Bruno",
                                        "is_my_contact": False})
    id: str = Field(description="the contact's WhatsApp id (`<number>@c.us` or `<n>@lid`)")
    number: str | None = Field(description="digits; null for a `@lid` whose phone the page does not know")
    name: str | None = Field(description="the name saved in this number's address book")
    short_name: str | None = None
    push_name: str | None = Field(default=None, description="the name the contact set for themselves")
    is_business: bool = False
    is_enterprise: bool = False
    is_my_contact: bool = False
    is_blocked: bool = False
    verified_name: str | None = None
    profile_picture_url: str | None = Field(
        default=None, description="set by `GET .../contacts/{id}` only: the URL WhatsApp gives for the "
                                  "picture (short-lived, fetched by the client, never by the service)")


class ChatPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_CHAT, _GROUP], "next_cursor": "WzE3NjUwMDAwMDAsIjEyMDM2MzA0MTIzNDU2Nzg5MEBnLnVzIl0"}]})
    items: list[ChatOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class GroupPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [{**_GROUP, "participants_count": 12}], "next_cursor": None}]})
    items: list[GroupOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class ContactPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_CONTACT], "next_cursor": None}]})
    items: list[ContactOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at the end")


class MessagePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [_CHAT["last_message"]], "has_more": True, "before_cursor": "IjNFQjBDNDMxRDVBOUYxRTJCN0E0Ig",
        "after_cursor": "IjNFQjBDNDMxRDVBOUYxRTJCN0E0Ig"}]})
    items: list[MessageReceivedData] = Field(description="oldest to newest")
    has_more: bool = Field(description="more messages exist beyond this page in the direction asked")
    before_cursor: str | None = Field(description="pass as `before` for the older page (the first item's id)")
    after_cursor: str | None = Field(description="pass as `after` for the newer page (the last item's id); "
                                                 "on an empty page, the cursor that was given, to poll again")


class ParticipantsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"group_id": "120363041234567890@g.us", "items": _PARTICIPANTS}]})
    group_id: str
    items: list[ParticipantOut]


class NumberExistsOut(BaseModel):
    model_config = _examples({"number": "15551230001", "exists": True, "id": "15551230001@c.us"},
                             {"number": "15550000000", "exists": False, "id": None})
    number: str
    exists: bool
    id: str | None = Field(description="the WhatsApp id of the number when it exists")


class ReadOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"chat_id": "15551230001@c.us", "read": True}]})
    chat_id: str
    read: Literal[True] = True


class PresenceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"chat_id": "15551230001@c.us", "state": "typing"}]})
    chat_id: str
    state: Literal["typing", "recording", "paused"]
