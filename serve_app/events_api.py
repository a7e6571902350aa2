"""GET /v1/workspaces/{ws}/events: the SSE stream (auth by HMAC, console cookie or stream token).

The stream takes its slots under the per-token and per-key caps before it starts
(429 `too_many_streams` otherwise) and re-checks its caller's access while it
runs (serve_app/stream_access.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import check_id, ctx
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.sse import event_stream
from wa_ray.serve_app.stream_access import StreamAccess
from wa_ray.storage.events import STREAM_POSITION_PATTERN
from wa_ray.storage.streamslots import StreamSlots
from wa_ray.events import EVENT_TYPES
from wa_ray.ids import ID_PATTERN

router = APIRouter(tags=["events"])


@router.get("/v1/workspaces/{ws}/events", response_model=None, response_class=EventSourceResponse, responses={
    **errors(400, 422, 429), 200: {"description": "text/event-stream; `id:` is the Redis stream id",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    summary="Live events (SSE); resumable with Last-Event-ID")
async def events(ws: str, request: Request, c: AppContext = Depends(ctx),
                 token: Annotated[str | None, Query(max_length=2048, description="stream token (browsers)")] = None,
                 types: Annotated[str | None, Query(max_length=500, description="comma-separated event types",
                                                    examples=["session.qr,session.status"])] = None,
                 session_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                 last_event_id: Annotated[str | None, Header(pattern=STREAM_POSITION_PATTERN)] = None,
                 after: Annotated[str | None, Query(pattern=STREAM_POSITION_PATTERN,
                                                    description="resume after this id (for clients that cannot "
                                                                "set Last-Event-ID); the header wins")] = None,
                 heartbeat: Annotated[int, Query(ge=1, le=60, description="seconds between ':' comments")] = 15,
                 ) -> EventSourceResponse:
    check_id(ws, "workspace")
    resume = last_event_id or after
    if resume and "-" not in resume:
        resume += "-0"
    if resume and any(int(part) >= 2**64 - 1 for part in resume.split("-")):
        raise ApiError(422, "validation_error", "not a stream id", {"max": "18446744073709551614-18446744073709551614"})
    who = await c.auth.authenticate(request, stream_token=token)
    request.state.principal = who
    if not who.may_access(ws):
        raise ApiError(404, "not_found", "workspace not found")
    if who.session_id:  # a token pinned to one session cannot be widened by the query
        if session_id and session_id != who.session_id:
            raise ApiError(404, "not_found", "session not found")
        session_id = who.session_id
    wanted = frozenset(t for t in (types or "").split(",") if t) or None
    if wanted and not wanted <= EVENT_TYPES:
        raise ApiError(422, "validation_error", "unknown event type in types",  # never echoes what it rejects
                       {"known": sorted(EVENT_TYPES)})
    access = await StreamAccess.open(c.auth, StreamSlots(c.redis), who, per_token=c.config.streams_per_token,
                                     per_key=c.config.streams_per_key)
    stream = event_stream(c.hub, ws, resume, wanted, session_id, guard=access)
    # the generator frees the slots when it ends; the background task covers a response that never
    # iterated it (HEAD, or a client gone before the first byte)
    return EventSourceResponse(stream, ping=heartbeat, headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
                               send_timeout=30, background=BackgroundTask(access.close))
