"""The HTTP ingress: REST for backends, SSE for browsers, on Ray Serve."""

from __future__ import annotations

import io
import re
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from ray import serve
from sse_starlette import EventSourceResponse

from serve_app import errors
from serve_app.context import AppContext
from serve_app.deps import (
    check_id,
    ctx,
    session_record,
    workspace,
    writable_workspace,
)
from serve_app.errors import ApiError
from serve_app.messages_api import router as messages_router
from serve_app.models import CreateSession, SessionOut, StreamToken, WebhookConfig
from serve_app.sse import event_stream
from storage.webhooks import WebhookTarget
from wa_ray.config import RuntimeConfig
from wa_ray.ids import ID_PATTERN, new_id

router = APIRouter()

_ID_RE = re.compile(ID_PATTERN)


def build_app(context: AppContext) -> FastAPI:
    """One FastAPI app per replica, built in the replica, holding that replica's context."""
    api = FastAPI(title="wa-ray", version="0.1.0", default_response_class=JSONResponse)
    errors.install(api)
    api.state.ctx = context
    api.include_router(router)
    api.include_router(messages_router)
    return api


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(c: AppContext = Depends(ctx)) -> JSONResponse:
    reasons = []
    try:
        await c.redis.ping()
    except Exception as exc:
        reasons.append(f"redis: {type(exc).__name__}")
    try:
        c.supervisor()
    except ValueError:
        reasons.append("supervisor: not running")
    return JSONResponse({"status": "ready" if not reasons else "not_ready", "reasons": reasons},
                          200 if not reasons else 503)


@router.post("/v1/workspaces/{ws}/sessions", status_code=201, response_model=SessionOut)
async def create_session(body: CreateSession, ws: str = Depends(writable_workspace),
                         c: AppContext = Depends(ctx)) -> SessionOut:
    sid = body.session_id or new_id("s")
    record = await c.supervisor().create_session.remote(ws, sid)
    return SessionOut.from_record(record)


@router.get("/v1/workspaces/{ws}/sessions", response_model=list[SessionOut])
async def list_sessions(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> list[SessionOut]:
    return [SessionOut.from_record(r) for r in await c.registry.list(ws)]


@router.get("/v1/workspaces/{ws}/sessions/{sid}", response_model=SessionOut)
async def get_session(sid: str, ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    return SessionOut.from_record(await session_record(c, ws, sid))


@router.delete("/v1/workspaces/{ws}/sessions/{sid}", status_code=204)
async def delete_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> Response:
    await session_record(c, ws, sid)
    await c.supervisor().delete_session.remote(ws, sid)
    return Response(status_code=204)


@router.post("/v1/workspaces/{ws}/sessions/{sid}/restart", response_model=SessionOut)
async def restart_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    await session_record(c, ws, sid)
    await c.supervisor().restart_session.remote(ws, sid)
    return SessionOut.from_record(await session_record(c, ws, sid))


@router.post("/v1/workspaces/{ws}/sessions/{sid}/logout", response_model=SessionOut)
async def logout_session(sid: str, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> SessionOut:
    await session_record(c, ws, sid)
    await c.supervisor().logout_session.remote(ws, sid)
    return SessionOut.from_record(await session_record(c, ws, sid))


@router.get("/v1/workspaces/{ws}/sessions/{sid}/qr", response_model=None)
async def session_qr(sid: str, format: str = Query("raw", pattern="^(raw|png)$"), ws: str = Depends(workspace),
                     c: AppContext = Depends(ctx)) -> Any:
    record = await session_record(c, ws, sid)
    if record.get("state") != "qr_required" or not record.get("qr"):
        raise ApiError(409, "no_qr", "session is not waiting for a QR scan", {"state": record.get("state")})
    if format == "png":
        return Response(_png(record["qr"]), media_type="image/png")
    return {"qr": record["qr"], "since": float(record.get("qr_at") or 0)}


def _png(data: str) -> bytes:
    buf = io.BytesIO()
    segno.make(data, error="l").save(buf, kind="png", scale=6, border=2)
    return buf.getvalue()


@router.put("/v1/workspaces/{ws}/webhook", status_code=204)
async def set_webhook(body: WebhookConfig, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> Response:
    await c.webhooks.set(ws, WebhookTarget(str(body.url), body.secret))
    return Response(status_code=204)


@router.post("/v1/workspaces/{ws}/stream-tokens", status_code=201, response_model=StreamToken)
async def stream_token(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> StreamToken:
    token, exp = c.auth.issue_stream_token(ws)
    return StreamToken(token=token, expires_at=exp)


@router.get("/v1/workspaces/{ws}/events", response_model=None)
async def events(ws: str, request: Request, c: AppContext = Depends(ctx), token: str | None = None,
                 types: str | None = None, session_id: str | None = None,
                 last_event_id: Annotated[str | None, Header()] = None) -> EventSourceResponse:
    check_id(ws, "workspace")
    if token:
        c.auth.verify_stream_token(token, ws)
    else:
        who = await c.auth.verify(request)
        if not who.may_access(ws):
            raise ApiError(404, "not_found", "workspace not found")
    if last_event_id and not re.fullmatch(r"\d+-\d+", last_event_id):
        raise ApiError(400, "bad_last_event_id", "Last-Event-ID must be a stream id like 1700000000000-0")
    wanted = set(types.split(",")) if types else None
    stream = event_stream(c.events, ws, last_event_id, wanted, session_id)
    return EventSourceResponse(stream, ping=15, headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"})


@serve.deployment(name="Ingress", num_replicas=1, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
@serve.ingress()
class Ingress:
    def __init__(self, config: RuntimeConfig) -> None:
        self._context = AppContext.build(config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self._context)
