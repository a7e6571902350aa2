"""Live conversations of a linked session: chats, messages, contacts, number check, read, presence, groups.

Everything is read from the session's page when asked (serve_app/session_pages.py -> BrowserHost ->
sessions/bridge_conversations.js); the service keeps no copy of a customer's history. All routes are
under `/v1/workspaces/{ws}/sessions/{sid}`: GET needs any key of the workspace (a `read` key too), POST
one that may write; another workspace's ids are 404 as everywhere.

Invariants:
* Cursors are opaque to clients (urlsafe base64 of a small JSON value this module made) and are checked
  before use: a malformed, oversized or foreign-looking cursor is 422 `invalid_cursor`, never a 500,
  and its text is never echoed. A chat, group or contact id must match its WhatsApp id pattern
  (wa_ray/wa_ids.py) or the request is 422; ids reach the page only as JSON arguments.
* The number check is rate limited per session (WA_NUMBER_CHECK_PER_MIN, bursts of as many): bulk checks
  are a ban signal, so the limit holds whichever key asks.
* A session that is not connected is 409 `session_unavailable` with its state (session_pages.py).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.conversation_models import (
    ChatPage,
    ContactOut,
    ContactPage,
    GroupPage,
    MessagePage,
    NumberExistsOut,
    ParticipantsOut,
    PresenceOut,
    ReadOut,
)
from wa_ray.serve_app.deps import ctx, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import ErrorBody
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.session_pages import call_page, connected_record
from wa_ray.storage.ratelimit import RateLimiter
from wa_ray.wa_ids import CHAT_ID_PATTERN, GROUP_ID_PATTERN, phone_of

router = APIRouter(prefix="/v1/workspaces/{ws}/sessions/{sid}", tags=["conversations"])

CURSOR_MAX = 400  # characters of an encoded cursor; ours are well under
MESSAGES_TIMEOUT_S = 20.0  # a page of messages may load earlier ones from the phone first
_NUMBER = re.compile(r"^[1-9][0-9]{4,19}$")
# fullmatch, not match: `$` also matches before a trailing newline
_CHAT = re.compile(CHAT_ID_PATTERN)
_GROUP = re.compile(GROUP_ID_PATTERN)


def is_chat_id(value: object) -> bool:
    return isinstance(value, str) and _CHAT.fullmatch(value) is not None


def is_group_id(value: object) -> bool:
    return isinstance(value, str) and _GROUP.fullmatch(value) is not None

# A page message id: fromMe_chat_key, with the participant of a group message.
_MESSAGE_ID = re.compile(r"^(?:true|false)_[0-9]{1,20}(?:-[0-9]{1,20})?@(?:c\.us|g\.us|lid)_[A-Za-z0-9]{1,64}"
                         r"(?:_[0-9]{1,20}@(?:c\.us|lid))?$")


_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def _responses(*extra: int) -> dict[int | str, dict[str, Any]]:
    """Every route's statuses: 409 not connected, 422 bad id/cursor, 504 the page did not answer."""
    return {**errors(409, 422, *extra),
            504: {"model": ErrorBody, "description": "The session's page did not answer in time"}}


def _invalid_cursor() -> ApiError:
    return ApiError(422, "invalid_cursor", "cursor is not one this API gave")


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(text: str) -> Any:
    if len(text) > CURSOR_MAX or not _CURSOR_TEXT.fullmatch(text):
        raise _invalid_cursor()
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid_cursor() from None


def _chat_cursor(text: str | None) -> list[Any] | None:
    if text is None:
        return None
    value = decode_cursor(text)
    if (not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int
            or not 0 <= value[0] < 2**53 or not is_chat_id(value[1])):
        raise _invalid_cursor()
    return value


def _message_cursor(text: str | None) -> str | None:
    if text is None:
        return None
    value = decode_cursor(text)
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise _invalid_cursor()
    return value


def _contact_cursor(text: str | None) -> str | None:
    if text is None:
        return None
    value = decode_cursor(text)
    if not is_chat_id(value) or is_group_id(value):
        raise _invalid_cursor()
    return str(value)


def _chat_id(value: str) -> str:
    if not is_chat_id(value):
        raise ApiError(422, "invalid_chat_id", "chat_id is not a WhatsApp chat id (<number>@c.us, <id>@g.us, <n>@lid)")
    return value


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    error = result.get("error") if isinstance(result, dict) else "bad_answer"
    if error is None:
        return result
    if error == "chat_not_found":
        raise ApiError(404, "chat_not_found", "the session has no such chat")
    if error == "contact_not_found":
        raise ApiError(404, "contact_not_found", "the session has no such contact")
    if error == "cursor_unknown":
        raise _invalid_cursor()
    raise ApiError(502, "page_error", "the session's page could not answer")


@dataclass(frozen=True)
class LiveSession:
    """A connected session of the caller's workspace, found before anything else of the request is read."""

    ws: str
    sid: str
    record: dict[str, str]


async def live_session(sid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> LiveSession:
    # a dependency runs before the route's own parameters are validated: an unknown session is 404 and an
    # unlinked one 409 whatever else the request carries
    return LiveSession(ws, sid, await connected_record(c, ws, sid))


async def writable_live_session(sid: str, ws: str = Depends(writable_workspace),
                                c: AppContext = Depends(ctx)) -> LiveSession:
    return LiveSession(ws, sid, await connected_record(c, ws, sid))


async def _conversation(c: AppContext, s: LiveSession, op: str, params: dict[str, Any],
                        timeout_s: float = 10.0) -> dict[str, Any]:
    return _outcome(await call_page(c, s.ws, s.sid, "conversation", op, params, timeout_s=timeout_s,
                                    record=s.record))


_LIMIT = Query(50, ge=1, le=100, description="items per page, 1..100")
_CURSOR_PATTERN = rf"^[A-Za-z0-9_-]{{1,{CURSOR_MAX}}}$"
_CURSOR = Query(None, pattern=_CURSOR_PATTERN, description="`next_cursor` of the previous page")
_CHAT_PATH = Path(pattern=CHAT_ID_PATTERN, description="`<number>@c.us`, `<id>@g.us` or `<n>@lid`")
_USER_PATTERN = r"^(?:[1-9][0-9]{4,19}@c\.us|[0-9]{1,20}@lid)$"


def _page(got: dict[str, Any]) -> ORJSONResponse:
    nxt = got.get("next")
    return ORJSONResponse({"items": got["items"], "next_cursor": encode_cursor(nxt) if nxt else None})


@router.get("/chats", response_model=ChatPage, responses=_responses(),
            summary="The session's chats, newest activity first, from its live page")
async def list_chats(cursor: str | None = _CURSOR, limit: int = _LIMIT,
                     archived: bool | None = Query(None, description="only archived (true) or unarchived (false)"),
                     s: LiveSession = Depends(live_session), c: AppContext = Depends(ctx)) -> ORJSONResponse:
    after = _chat_cursor(cursor)
    return _page(await _conversation(c, s, "chats", {"cursor": after, "limit": limit, "archived": archived}))


@router.get("/chats/{chat_id}/messages", response_model=MessagePage, responses=_responses(),
            summary="A chat's messages, oldest to newest: the latest page, or before/after a cursor")
async def list_messages(chat_id: str = _CHAT_PATH,
                        before: str | None = Query(None, pattern=_CURSOR_PATTERN,
                                                   description="`before_cursor` of a page: the older page"),
                        after: str | None = Query(None, pattern=_CURSOR_PATTERN,
                                                  description="`after_cursor` of a page: the newer page"),
                        limit: int = _LIMIT, s: LiveSession = Depends(live_session),
                        c: AppContext = Depends(ctx)) -> ORJSONResponse:
    _chat_id(chat_id)
    if before is not None and after is not None:
        raise ApiError(422, "invalid_cursor", "give before or after, not both")
    params = {"chat_id": chat_id, "before": _message_cursor(before), "after": _message_cursor(after), "limit": limit}
    got = await _conversation(c, s, "messages", params, timeout_s=MESSAGES_TIMEOUT_S)
    items = got["items"]
    if items:
        first, last = encode_cursor(items[0]["wa_message_id"]), encode_cursor(items[-1]["wa_message_id"])
    else:  # nothing newer (or older) yet: the position given stays the one to ask from again
        first = last = after or before
    return ORJSONResponse({"items": items, "has_more": bool(got.get("has_more")),
                           "before_cursor": first, "after_cursor": last})


@router.get("/contacts", response_model=ContactPage, responses=_responses(),
            summary="The session's contacts (people), by id; `q` searches name, push name and number")
async def list_contacts(q: str | None = Query(None, min_length=1, max_length=100), cursor: str | None = _CURSOR,
                        limit: int = _LIMIT, s: LiveSession = Depends(live_session),
                        c: AppContext = Depends(ctx)) -> ORJSONResponse:
    after = _contact_cursor(cursor)
    return _page(await _conversation(c, s, "contacts", {"query": q, "cursor": after, "limit": limit}))


@router.get("/contacts/{number}/exists", response_model=NumberExistsOut, responses=_responses(429),
            summary="Whether a phone number is on WhatsApp (rate limited per session)")
async def number_exists(number: str = Path(pattern=_NUMBER.pattern, description="international, digits only"),
                        s: LiveSession = Depends(live_session), c: AppContext = Depends(ctx)) -> NumberExistsOut:
    if not _NUMBER.fullmatch(number):
        raise ApiError(422, "invalid_number", "number must be 5 to 20 digits, international, without +")
    per_min = c.config.number_check_per_min  # per session: the budget holds whichever key asks
    verdict = await RateLimiter(c.redis).check(f"numcheck:{s.ws}:{s.sid}", per_min / 60.0, per_min)
    if not verdict.allowed:
        raise ApiError(429, "rate_limited", "too many number checks for this session",
                       {"retry_after_s": int(verdict.retry_after_header)},
                       headers={"Retry-After": verdict.retry_after_header})
    got = await _conversation(c, s, "exists", {"number": number})
    return NumberExistsOut(number=number, exists=bool(got.get("exists")), id=got.get("id"))


@router.get("/contacts/{contact_id}", response_model=ContactOut, responses=_responses(),
            summary="One contact: names, business or not, profile picture URL")
async def get_contact(contact_id: str = Path(pattern=_USER_PATTERN, description="`<number>@c.us` or `<n>@lid`"),
                      s: LiveSession = Depends(live_session), c: AppContext = Depends(ctx)) -> ORJSONResponse:
    if not is_chat_id(contact_id) or is_group_id(contact_id):
        raise ApiError(422, "invalid_contact_id", "contact_id is not a WhatsApp user id (<number>@c.us or <n>@lid)")
    got = await _conversation(c, s, "contact", {"contact_id": contact_id})
    return ORJSONResponse(got["contact"])


@router.post("/chats/{chat_id}/read", response_model=ReadOut, responses=_responses(),
             summary="Mark a chat read: its unread count clears and the sender sees read receipts")
async def mark_read(chat_id: str = _CHAT_PATH, s: LiveSession = Depends(writable_live_session),
                    c: AppContext = Depends(ctx)) -> ReadOut:
    await _conversation(c, s, "read", {"chat_id": _chat_id(chat_id)})
    return ReadOut(chat_id=chat_id)


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"state": "typing"}]})
    state: Literal["typing", "recording", "paused"] = Field(
        description="`typing` or `recording` shows in the chat (WhatsApp clears it after about 25 s); "
                    "`paused` clears it")


@router.post("/chats/{chat_id}/presence", response_model=PresenceOut, responses=_responses(400),
             summary="Show typing or recording in a chat, or clear it")
async def set_presence(body: PresenceIn, chat_id: str = _CHAT_PATH, s: LiveSession = Depends(writable_live_session),
                       c: AppContext = Depends(ctx)) -> PresenceOut:
    await _conversation(c, s, "presence", {"chat_id": _chat_id(chat_id), "state": body.state})
    return PresenceOut(chat_id=chat_id, state=body.state)


@router.get("/groups", response_model=GroupPage, responses=_responses(),
            summary="The session's group chats with their participant counts")
async def list_groups(cursor: str | None = _CURSOR, limit: int = _LIMIT, s: LiveSession = Depends(live_session),
                      c: AppContext = Depends(ctx)) -> ORJSONResponse:
    after = _chat_cursor(cursor)
    return _page(await _conversation(c, s, "chats", {"cursor": after, "limit": limit, "groups": True}))


@router.get("/groups/{group_id}/participants", response_model=ParticipantsOut, responses=_responses(),
            summary="A group's participants (a @lid the page cannot resolve stays a @lid)")
async def group_participants(group_id: str = Path(pattern=GROUP_ID_PATTERN, description="`<id>@g.us`"),
                             s: LiveSession = Depends(live_session), c: AppContext = Depends(ctx)) -> ORJSONResponse:
    if not is_group_id(group_id):
        raise ApiError(422, "invalid_group_id", "group_id is not a WhatsApp group id (<id>@g.us)")
    got = await _conversation(c, s, "participants", {"group_id": group_id})
    items = [{**p, "number": phone_of(p.get("id"))} for p in got["items"]]  # a number only from a @c.us id
    return ORJSONResponse({"group_id": group_id, "items": items})
