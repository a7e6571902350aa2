"""Message routes: durable accept (with the provider chosen) and status history.

POST picks the provider from the workspace's cached provider snapshot (no Ray
call per message, see provider_selector.py), writes the message and its queue
entry to Redis in one atomic step, and only then answers 202.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from wa_ray.serve_app import meta_webhooks, provider_api, webhook_admin_api
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx, session_record, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.message_models import MessageAccepted, MessageOut, SendMessage
from wa_ray.serve_app.provider_selector import Snapshot, choose
from wa_ray.storage.messages import META, WEBJS, OutboundMessage, fingerprint
from wa_ray.ids import new_id

router = APIRouter()


@router.post("/v1/workspaces/{ws}/messages", status_code=202, response_model=MessageAccepted,
             responses={200: {"model": MessageAccepted, "description": "an Idempotency-Key repeat"}})
async def send_message(body: SendMessage, request: Request, ws: str = Depends(writable_workspace),
                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JSONResponse:
    c: AppContext = request.app.state.ctx  # not Depends(ctx): one dependency node less on the hottest route
    snap = await c.selector.snapshot(ws)
    provider, sid = await _route(c, snap, ws, body.session_id)
    msg = OutboundMessage(new_id("msg"), ws, sid, body.to, body.text, body.priority, provider)
    accepted = await c.messages.accept(msg, idempotency_key,
                                       fingerprint(body.to, body.text, body.priority, body.session_id))
    if not accepted.same_request:
        raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used for a different message",
                       {"message_id": accepted.message_id})
    if accepted.created:
        return JSONResponse(MessageAccepted(message_id=msg.message_id, status="queued", provider=provider)
                            .model_dump(), 202)
    first = await c.messages.record(accepted.message_id)
    return JSONResponse(MessageAccepted(message_id=accepted.message_id, status=first.get("status", "queued"),
                                        provider=first.get("provider") or WEBJS).model_dump(), 202)


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
    record = await c.messages.get(check_id(mid, "message"))
    if record is None or record["workspace_id"] != ws:
        raise ApiError(404, "not_found", "message not found")
    return MessageOut.from_record(record)


# The pipeline's other routes ride on this router, so the ingress's one include brings them all.
for _sub in (provider_api.router, webhook_admin_api.router, meta_webhooks.router):
    router.include_router(_sub)
