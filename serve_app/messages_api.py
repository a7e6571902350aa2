"""Message routes: durable accept (with the provider chosen) and status history.

POST picks the provider from the workspace's cached provider snapshot (no Ray
call per message, see provider_selector.py), writes the message and its queue
entry to Redis in one atomic step, and only then answers 202.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from wa_ray.serve_app import media_api, meta_webhooks, provider_api, webhook_admin_api
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx, session_record, workspace, writable_workspace
from wa_ray.serve_app.egress_check import allowed_url
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.message_models import MessageAccepted, MessageOut
from wa_ray.serve_app.send_models import AnySend, SendMessage
from wa_ray.serve_app.numbers_api import plan_limit_error
from wa_ray.serve_app.provider_selector import Snapshot, choose
from wa_ray.storage import keys
from wa_ray.storage.messages import META, WEBJS, Accepted, OutboundMessage, fingerprint
from wa_ray.storage.plan_limits import PlanLimitStore
from wa_ray.ids import is_valid_id, new_id
from wa_ray.message_kinds import MEDIA_KINDS, MEDIA_LIMITS, FailureCode, Kind, media_fits, provider_sends
from wa_ray.wa_ids import is_group_id, is_lid

router = APIRouter()


@router.post("/v1/workspaces/{ws}/messages", status_code=202, response_model=MessageAccepted,
             responses={200: {"model": MessageAccepted, "description": "an Idempotency-Key repeat"}})
async def send_message(body: SendMessage, request: Request, ws: str = Depends(writable_workspace),
                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JSONResponse:
    c: AppContext = request.app.state.ctx  # not Depends(ctx): one dependency node less on the hottest route
    snap = await c.selector.snapshot(ws)
    msg, fp = await prepare(c, snap, ws, body)
    charged = await charge(c, snap, ws, idempotency_key)
    accepted = await commit(c, ws, msg, fp, idempotency_key, charged)
    return JSONResponse(accepted.model_dump(), 202)


async def prepare(c: AppContext, snap: Snapshot, ws: str, body: AnySend,
                  message_id: str | None = None) -> tuple[OutboundMessage, str]:
    """The message as it will be stored, routed, and its request fingerprint; every check that may refuse it
    (ApiError), before anything is stored or counted. `message_id`: one minted ahead (a batch mints its ids
    at once), else a new one."""
    kind = body.kind
    strict = ("strict",) if body.strict else ()  # a part only when set: other fingerprints stay as they were
    if kind == Kind.TEXT and not body.preview_url and body.reply_to is None:
        content, fp = None, fingerprint(body.to, body.text, body.priority, body.session_id, *strict)  # as before kinds
    else:
        content = await _checked_content(c, ws, body)
        fp = fingerprint(body.to, orjson.dumps([kind.value, content], option=orjson.OPT_SORT_KEYS).decode(),
                         body.priority, body.session_id, *strict)
    if body.strict and body.session_id:
        provider, sid = await _route_strict(c, snap, ws, kind, body.session_id)
    else:
        provider, sid = await _route_kind(c, snap, ws, kind, body.session_id, web_only=_web_only(body.to))
    return OutboundMessage(message_id or new_id("msg"), ws, sid, body.to, body.text_of(), body.priority, provider,
                           kind=kind.value, content=content, strict=body.strict), fp


async def charge(c: AppContext, snap: Snapshot, ws: str, idempotency_key: str | None) -> bool:
    """Count the message against the workspace's daily limit (True when counted: `commit` refunds a repeat).
    The snapshot says whether the workspace has a limit: without one, no call is made for it."""
    return snap.messages_per_day is not None and await _charge_day(c, ws, idempotency_key)


async def commit(c: AppContext, ws: str, msg: OutboundMessage, fp: str, idempotency_key: str | None,
                 charged: bool) -> MessageAccepted:
    """The durable accept, then what to answer (`settle`)."""
    try:
        accepted = await c.messages.accept(msg, idempotency_key, fp)
    except BaseException:
        if charged:
            await PlanLimitStore(c.redis).refund_messages(ws)
        raise
    return await settle(c, ws, msg, accepted, charged)


async def settle(c: AppContext, ws: str, msg: OutboundMessage, accepted: Accepted, charged: bool) -> MessageAccepted:
    """What an accept comes to: the new message, or the first one of an Idempotency-Key repeat (refunding the
    day's count it took), or 409 `idempotency_key_reused` when the key came with a different message."""
    if charged and not accepted.created:  # an idempotent repeat: the first one was counted
        await PlanLimitStore(c.redis).refund_messages(ws)
    if not accepted.same_request:
        raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used for a different message",
                       {"message_id": accepted.message_id})
    if accepted.created:
        return MessageAccepted(message_id=msg.message_id, status="queued", provider=msg.provider)
    first = await c.messages.record(ws, accepted.message_id)
    return MessageAccepted(message_id=accepted.message_id, status=first.get("status", "queued"),
                           provider=first.get("provider") or WEBJS)


async def _charge_day(c: AppContext, ws: str, idempotency_key: str | None) -> bool:
    """Count this message against the workspace's messages_per_day (True when it was counted). Over the
    limit is 409 `plan_limit`, except for a repeat of an Idempotency-Key already accepted, which is answered
    as the first one was (and counted once)."""
    charge = await PlanLimitStore(c.redis).charge_messages(ws, 1)
    if charge.ok:
        return charge.max is not None
    if idempotency_key and await c.redis.exists(keys.idempotency(ws, idempotency_key)):
        return False
    raise plan_limit_error("messages_per_day", charge.current, charge.max)


async def _checked_content(c: AppContext, ws: str, body: AnySend) -> dict[str, Any]:
    """The content dict, after the checks that need the store or the guard: a media id of this workspace
    that fits the kind, a media url the guard allows, a quoted or reacted-to message of ours that is this
    workspace's. None of the 422s names what it refused."""
    content = body.content()
    kind = body.kind
    if kind in MEDIA_KINDS:
        if content["media_id"]:
            info = await c.media.info(ws, content["media_id"])
            if info is None:
                raise ApiError(422, FailureCode.MEDIA_NOT_FOUND, "media.media_id: no such media in this workspace",
                               {"field": "media.media_id"})
            refused = media_fits(kind, info.mimetype, info.size)
            if refused is not None:
                raise ApiError(422, refused, f"media.media_id: the stored media does not fit a {kind.value}",
                               {"field": "media.media_id", "limit_bytes": MEDIA_LIMITS[kind].max_bytes})
        else:
            await allowed_url(c, content["url"], "media.url")
    for field, ref in (("reply_to", content.get("reply_to")),
                       ("message_id", content.get("message_id") if kind == Kind.REACTION else None)):
        if ref and ref.startswith("msg_"):
            record = await c.messages.record(ws, ref) if is_valid_id(ref) else {}
            if not record or record.get("workspace_id") != ws:
                raise ApiError(422, FailureCode.TARGET_NOT_FOUND, f"{field}: no such message in this workspace",
                               {"field": field})
    return content


async def _route_strict(c: AppContext, snap: Snapshot, ws: str, kind: Kind, sid: str) -> tuple[str, str]:
    """(WEBJS, sid) for a strict message: its own session or nothing. A session that is not connected now
    is 409 `session_unavailable` with its state, so the caller learns it at once; an accepted one waits in
    that session's queue or fails there (storage/messages.may_move keeps it from any failover)."""
    if not provider_sends(WEBJS, kind):
        raise ApiError(422, FailureCode.KIND_NOT_SUPPORTED, f"a strict message leaves from its session, and "
                       f"WhatsApp Web cannot send a {kind.value}", {"type": kind.value, "provider": WEBJS})
    if snap.override == META:
        raise ApiError(409, "provider_pinned", "this workspace is pinned to the Cloud API; a strict message "
                       "leaves only from its session", {"provider": META})
    record = await session_record(c, ws, sid)  # 404 for a session that does not exist in this workspace
    state = record.get("state") or "initializing"
    if state != "connected":
        raise ApiError(409, "session_unavailable", "the session is not connected; a strict message leaves only "
                       "from it", {"state": state})
    return WEBJS, sid


def _web_only(to: str) -> bool:
    """A group or a @lid: an address only WhatsApp Web has (the Cloud API sends to phone numbers)."""
    return is_group_id(to) or is_lid(to)


def _recipient_not_supported(why: str) -> ApiError:
    return ApiError(422, "recipient_not_supported", f"a group or @lid recipient is sent by WhatsApp Web only; {why}",
                    {"field": "to", "provider": META})


async def _route_kind(c: AppContext, snap: Snapshot, ws: str, kind: Kind,
                      session_id: str | None, *, web_only: bool = False) -> tuple[str, str]:
    """(provider, session id) for a message of `kind`: a pinned provider that cannot send it is 422;
    templates go to the Cloud API, polls to WhatsApp Web, the rest as text does. A group or @lid recipient
    (`web_only`) goes to WhatsApp Web or is 422 `recipient_not_supported` where only the Cloud API could
    take it."""
    if web_only and snap.override == META:
        raise _recipient_not_supported("this workspace is pinned to the Cloud API")
    if web_only and kind == Kind.TEMPLATE:
        raise _recipient_not_supported("templates are sent by the Cloud API")
    if snap.override in (WEBJS, META) and not provider_sends(snap.override, kind):
        raise ApiError(422, FailureCode.KIND_NOT_SUPPORTED,
                       f"this workspace is pinned to a provider that cannot send a {kind.value}",
                       {"type": kind.value, "provider": snap.override})
    if kind == Kind.TEMPLATE:
        if not snap.meta_configured:
            raise ApiError(422, FailureCode.KIND_NOT_SUPPORTED,
                           "templates are sent by the Cloud API, which this workspace has not configured",
                           {"type": kind.value, "provider": META})
        return META, ""
    if kind == Kind.POLL:
        if session_id:
            await session_record(c, ws, session_id)
            return WEBJS, session_id
        sid = snap.default_session()
        if sid is None:
            raise ApiError(409, "no_session", "polls are sent by WhatsApp Web and this workspace has no session")
        return WEBJS, sid
    if web_only:
        return await _route_web(c, snap, ws, session_id)
    return await _route(c, snap, ws, session_id)


async def _route_web(c: AppContext, snap: Snapshot, ws: str, session_id: str | None) -> tuple[str, str]:
    """(WEBJS, session id) for a recipient only WhatsApp Web addresses, whatever the provider health says:
    it waits in the session's queue rather than go to the Cloud API."""
    if session_id:
        if session_id not in snap.sessions:
            await session_record(c, ws, session_id)
        return WEBJS, session_id
    sid = snap.default_session()
    if sid is None:
        if snap.meta_configured:
            raise _recipient_not_supported("this workspace has no session")
        raise ApiError(409, "no_session", "this workspace has no session; create one to send to a group or a @lid")
    return WEBJS, sid


async def _route(c: AppContext, snap: Snapshot, ws: str, session_id: str | None) -> tuple[str, str]:
    """(provider, session id) for a new message."""
    if session_id and session_id not in snap.sessions:
        await session_record(c, ws, session_id)  # 404 for a session that does not exist (or is newer than the cache)
    provider = choose(snap.priority, snap.override, snap.webjs(session_id), snap.meta)
    if provider is None:
        # nothing can send right now: queue it where it goes first once something recovers
        if session_id:
            provider = WEBJS
        elif not snap.meta_configured:
            raise ApiError(409, "no_session", "no connected session in this workspace; pass session_id or "
                                              "configure the Cloud API with PUT /v1/workspaces/{ws}/provider")
        else:
            provider = META if snap.priority == META or not snap.sessions else WEBJS
    if provider == META:
        return META, session_id or ""
    sid = session_id or snap.default_session()
    if sid is None:
        raise ApiError(409, "no_session", "this workspace has no session; create one or configure the Cloud API")
    return WEBJS, sid


@router.get("/v1/workspaces/{ws}/messages/{mid}", response_model=MessageOut)
async def get_message(mid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> MessageOut:
    record = await c.messages.get(ws, check_id(mid, "message"))
    if record is None or record["workspace_id"] != ws:
        raise ApiError(404, "not_found", "message not found")
    return MessageOut.from_record(record)


# The pipeline's other routes ride on this router, so the ingress's one include brings them all.
for _sub in (provider_api.router, webhook_admin_api.router, meta_webhooks.router, media_api.router):
    router.include_router(_sub)
