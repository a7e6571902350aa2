"""A linked page's conversations: chats, messages, contacts, number check, read, chat state, groups.

The page functions live in sessions/bridge_conversations.js and read only what whatsapp-web.js 1.34.7
reads for the same jobs. This class is their one Python caller: every argument goes to the page as
JSON (`evaluate_json(script, arg)`), never as source text, so nothing a client sends is ever run. What
comes back is plain data, as one JSON string (cheap to carry however large the page); page messages are
raw `serializeMsg` reports, typed by the caller (the host types them as message payloads,
actors/history_messages.py).

Errors: an unknown chat `ChatNotFound`, an unknown cursor message `CursorUnknown`, an unknown contact
`ContactNotFound`; a page that is gone `PageGone` (sessions/page.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from wa_ray.sessions.page import PageSession

ChatStateName = Literal["typing", "recording", "paused"]

_CHATS = "(o) => window.__waray.chats(o)"
_MESSAGES = "([id, o]) => window.__waray.chatMessages(id, o)"
_CONTACTS = "(o) => window.__waray.contacts(o)"
_CONTACT = "(id) => window.__waray.contact(id)"
_EXISTS = "(n) => window.__waray.numberExists(n)"
_READ = "(id) => window.__waray.markRead(id)"
_STATE = "([id, s, o]) => window.__waray.chatState(id, s, o)"
_PARTICIPANTS = "(id) => window.__waray.groupParticipants(id)"

MAX_PAGE = 500  # the bridge's own cap per call


class ChatNotFound(Exception):
    """The page holds no chat (or no group, where one was asked for) with that id."""


class CursorUnknown(Exception):
    """The before/after message is not a message of that chat the page knows."""


class ContactNotFound(Exception):
    """The page holds no contact with that id."""


@dataclass(frozen=True)
class ChatPageRaw:
    """Chats as the bridge reports them; `last_message` of each is a raw serializeMsg report or None."""

    items: list[dict[str, Any]]
    next: tuple[int, str] | None
    total: int


@dataclass(frozen=True)
class MessagesRaw:
    items: list[dict[str, Any]]  # raw serializeMsg reports, oldest to newest
    has_more: bool


@dataclass(frozen=True)
class ContactPageRaw:
    items: list[dict[str, Any]]
    next: str | None


def _checked(result: Any) -> Any:
    if isinstance(result, dict) and "error" in result:
        error = result["error"]
        if error == "chat_not_found":
            raise ChatNotFound()
        if error == "cursor_unknown":
            raise CursorUnknown()
        if error == "contact_not_found":
            raise ContactNotFound()
        raise ValueError(f"page answered {str(error)[:40]}")
    return result


class PageConversations:
    def __init__(self, page: PageSession) -> None:
        self._page = page

    async def chats(self, *, cursor: tuple[int, str] | None = None, limit: int = 50,
                    archived: bool | None = None, groups: bool = False) -> ChatPageRaw:
        """A page of chats, `t` desc then id asc, after `cursor` ([t, id] of the previous page's last)."""
        raw = _checked(await self._page.evaluate_json(_CHATS, {
            "cursor": list(cursor) if cursor else None, "limit": min(limit, MAX_PAGE), "archived": archived,
            "groups": groups}))
        nxt = raw.get("next")
        return ChatPageRaw(list(raw.get("items") or []), (int(nxt[0]), str(nxt[1])) if nxt else None,
                           int(raw.get("total") or 0))

    async def chat_messages(self, chat_id: str, *, before: str | None = None, after: str | None = None,
                            limit: int = 50, since_ts: int | None = None) -> MessagesRaw:
        """Messages of a chat, oldest to newest: the newest `limit` before `before` (or of all), or the oldest
        `limit` after `after`; none older than `since_ts`. Raises ChatNotFound, CursorUnknown."""
        raw = _checked(await self._page.evaluate_json(_MESSAGES, [chat_id, {
            "before": before, "after": after, "limit": min(limit, MAX_PAGE), "sinceTs": since_ts}]))
        return MessagesRaw(list(raw.get("items") or []), bool(raw.get("has_more")))

    async def contacts(self, *, query: str | None = None, cursor: str | None = None,
                       limit: int = 50) -> ContactPageRaw:
        raw = _checked(await self._page.evaluate_json(_CONTACTS, {"query": query, "cursor": cursor,
                                                              "limit": min(limit, MAX_PAGE)}))
        return ContactPageRaw(list(raw.get("items") or []), raw.get("next"))

    async def contact(self, contact_id: str) -> dict[str, Any]:
        """One contact with its profile picture URL (or None). Raises ContactNotFound."""
        return dict(_checked(await self._page.evaluate_json(_CONTACT, contact_id)))

    async def number_exists(self, number: str) -> tuple[bool, str | None]:
        """(registered on WhatsApp, its WhatsApp id): WhatsApp's own check, as isRegisteredUser asks it."""
        raw = _checked(await self._page.evaluate_json(_EXISTS, number))
        return bool(raw.get("exists")), raw.get("id")

    async def mark_read(self, chat_id: str) -> None:
        """sendSeen: the chat's unread count clears and its sender gets read receipts. Raises ChatNotFound."""
        _checked(await self._page.evaluate_json(_READ, chat_id))

    async def chat_state(self, chat_id: str, state: ChatStateName, *, require_chat: bool = False) -> None:
        """Show typing, recording or paused in a chat. Raises ChatNotFound (with `require_chat`)."""
        _checked(await self._page.evaluate_json(_STATE, [chat_id, state, {"requireChat": require_chat}]))

    async def group_participants(self, group_id: str) -> list[dict[str, Any]]:
        """Participants of a group the page holds. Raises ChatNotFound."""
        return list(_checked(await self._page.evaluate_json(_PARTICIPANTS, group_id)).get("items") or [])
