"""Session lifecycle routes: create, list, inspect, delete, restart, logout, QR."""

from __future__ import annotations

import io
from typing import Literal

import segno
from fastapi import APIRouter, Depends, Query, Response

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, session_record, supervisor_call, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import CreateSession, QrOut, SessionOut
from wa_ray.serve_app.numbers_api import plan_limit_error
from wa_ray.serve_app.openapi import PLAN_LIMIT_409, errors
from wa_ray.storage.numbers import NumberStore
from wa_ray.storage.plan_limits import PlanLimitStore
from wa_ray.ids import new_id

router = APIRouter(prefix="/v1/workspaces/{ws}/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=SessionOut, responses=errors(400, 413, 422, 503, notes={
    409: f"{PLAN_LIMIT_409} (max_numbers), or `quota_exceeded`: the service's own per-workspace quota"}),
             summary="Start a session (idempotent per session id; 409 `plan_limit` over max_numbers)")
async def create_session(body: CreateSession, ws: str = Depends(writable_workspace),
                         c: AppContext = Depends(ctx)) -> SessionOut:
    sid = body.session_id or new_id("s")
    fresh = await c.registry.get(ws, sid) is None
    if fresh:
        await _take_slot(c, ws, sid)  # 409 over the plan's max_numbers; the slot is the index entry
        # before the page opens: its lifecycle reads how it links from here (an existing session keeps its own)
        await c.registry.update(ws, sid, login=body.login, phone=body.phone or "")
    try:
        record = await supervisor_call(c, "create_session", ws, sid)
    except ApiError:
        if fresh and not (await c.registry.get(ws, sid) or {}).get("node_id"):
            await c.registry.remove(ws, sid)  # never placed: leave no half record behind
        raise
    return await _out(c, ws, record or await session_record(c, ws, sid))


async def _take_slot(c: AppContext, ws: str, sid: str) -> None:
    """A plan limit under the service's own quota (WA_SESSIONS_PER_WORKSPACE) reserves the id atomically
    (storage/numbers.py); one at or over it can never bind first, and the supervisor's quota applies."""
    limit = (await PlanLimitStore(c.redis).get(ws)).max_numbers
    if limit is not None and limit < c.config.sessions_per_workspace:
        taken = await NumberStore(c.redis).reserve(ws, sid, limit)
        if not taken.ok:
            raise plan_limit_error("max_numbers", taken.current, taken.max)


async def _out(c: AppContext, ws: str, record: dict[str, str]) -> SessionOut:
    return SessionOut.from_record(record, await NumberStore(c.redis).primary(ws))


@router.get("", response_model=list[SessionOut], responses=errors(), summary="List the workspace's sessions")
async def list_sessions(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> list[SessionOut]:
    primary = await NumberStore(c.redis).primary(ws)
    return [SessionOut.from_record(r, primary) for r in await c.registry.list(ws)]


@router.get("/{sid}", response_model=SessionOut, responses=errors(), summary="One session's registry record")
async def get_session(sid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    return await _out(c, ws, await session_record(c, ws, sid))


@router.delete("/{sid}", status_code=204, response_class=Response, responses=errors(503),
               summary="Stop the session and forget it (its saved auth state is deleted)")
async def delete_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> Response:
    await session_record(c, ws, sid)
    await supervisor_call(c, "delete_session", ws, sid)
    if await NumberStore(c.redis).clear_primary(ws, sid):
        c.selector.invalidate(ws)
    return Response(status_code=204)


@router.post("/{sid}/restart", response_model=SessionOut, responses=errors(503),
             summary="Reopen the session's page (keeps the link; no QR when linked)")
async def restart_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    await session_record(c, ws, sid)
    await supervisor_call(c, "restart_session", ws, sid)
    return await _out(c, ws, await session_record(c, ws, sid))


@router.post("/{sid}/logout", response_model=SessionOut, responses=errors(503),
             summary="Unlink the device; a new QR is needed to use the session again")
async def logout_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    await session_record(c, ws, sid)
    await supervisor_call(c, "logout_session", ws, sid)
    return await _out(c, ws, await session_record(c, ws, sid))


@router.get("/{sid}/qr", response_model=QrOut, responses={
    **errors(409), 200: {"content": {"application/json": {}, "image/png": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}}},
    summary="The QR to scan now: raw string or PNG (409 when not waiting for a scan)")
async def session_qr(sid: str, format: Literal["raw", "png"] = Query("raw"), ws: str = Depends(workspace),
                     c: AppContext = Depends(ctx)) -> QrOut | Response:
    record = await session_record(c, ws, sid)
    if record.get("login") == "code":
        raise ApiError(409, "pairing_code_login", "this session links with a pairing code (session.pairing_code "
                       "events), not a QR", {"state": record.get("state")})
    if record.get("state") != "qr_required" or not record.get("qr"):
        raise ApiError(409, "no_qr", "session is not waiting for a QR scan", {"state": record.get("state")})
    if format == "png":
        return Response(_png(record["qr"]), media_type="image/png", headers={"Cache-Control": "no-store"})
    return QrOut(qr=record["qr"], since=float(record.get("qr_at") or 0))


def _png(data: str) -> bytes:
    buf = io.BytesIO()
    segno.make(data, error="l").save(buf, kind="png", scale=6, border=2)
    return buf.getvalue()
