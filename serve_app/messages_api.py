"""Message routes: durable accept and status history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header

from serve_app.context import AppContext
from serve_app.deps import check_id, ctx, session_record, workspace, writable_workspace
from serve_app.errors import ApiError
from serve_app.models import MessageAccepted, MessageOut, SendMessage
from storage.messages import OutboundMessage
from wa_ray.ids import new_id

router = APIRouter()


@router.post("/v1/workspaces/{ws}/messages", status_code=202, response_model=MessageAccepted)
async def send_message(body: SendMessage, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx),
                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> MessageAccepted:
    sid = body.session_id or await _default_session(c, ws)
    await session_record(c, ws, sid)
    msg = OutboundMessage(new_id("msg"), ws, sid, body.to, body.text, body.priority)
    message_id, _created = await c.messages.accept(msg, idempotency_key)
    return MessageAccepted(message_id=message_id, status="queued")


async def _default_session(c: AppContext, ws: str) -> str:
    sessions = await c.registry.list(ws)
    connected = [s for s in sessions if s.get("state") == "connected"]
    if not connected:
        raise ApiError(409, "no_session", "no connected session in this workspace; pass session_id")
    return connected[0]["session_id"]


@router.get("/v1/workspaces/{ws}/messages/{mid}", response_model=MessageOut)
async def get_message(mid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> MessageOut:
    record = await c.messages.get(check_id(mid, "message"))
    if record is None or record["workspace_id"] != ws:
        raise ApiError(404, "not_found", "message not found")
    return MessageOut(
        message_id=record["message_id"], workspace_id=ws, session_id=record["session_id"], to=record["to"],
        status=record["status"], provider=record["provider"], priority=record["priority"],
        created_at=float(record["created_at"]), wa_message_id=record.get("wa_message_id"), history=record["history"],
    )
