"""Request dependencies shared by the routers: context, caller, workspace scope, id checks, supervisor calls.

Every route that depends on `caller` (directly or through `workspace`,
`writable_workspace` or `admin`) is authenticated (HMAC, or the console
cookie) and rate limited per key, and its principal is what the audit
middleware records. Routers owned elsewhere (messages_api.py) get all of that
by depending on these.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import ray
from fastapi import Request

from wa_ray.serve_app.auth import Principal
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.errors import ApiError
from wa_ray.supervisors.placement import PlacementError, QuotaExceeded
from wa_ray.ids import ID_PATTERN

_ID_RE = re.compile(ID_PATTERN)
SUPERVISOR_TIMEOUT_S = 60.0


async def ctx(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, and this one is on
    # every route (four thread hops per POST /messages otherwise, the largest single cost of ours)
    return request.app.state.ctx


def check_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ApiError(404, "not_found", f"{what} not found")  # never echo or use a malformed id
    return value


# The auth dependencies call each other directly rather than through Depends chains: each FastAPI
# dependency node costs its resolution on every request (a four-deep chain on POST /messages is the
# largest share of our own CPU after the Redis calls). `caller` memoizes the
# principal in the request state, so a route that uses several of them still authenticates once.
async def caller(request: Request) -> Principal:
    state = request.state
    who = getattr(state, "principal", None)
    if who is None:
        who = await request.app.state.ctx.auth.authenticate(request)
        state.principal = who  # for the audit entry, and for the other dependencies of this request
    return who


async def workspace(ws: str, request: Request) -> str:
    check_id(ws, "workspace")
    who = await caller(request)
    if not who.may_access(ws):
        raise ApiError(404, "not_found", "workspace not found")  # 404, not 403: ids do not leak
    return ws


async def writable_workspace(ws: str, request: Request) -> str:
    await workspace(ws, request)
    if not (await caller(request)).may_write:
        raise ApiError(403, "forbidden", "this key is read-only")
    return ws


async def admin(request: Request) -> Principal:
    who = await caller(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "admin key required")
    return who


async def session_record(c: AppContext, ws: str, sid: str, code: str = "not_found") -> dict[str, str]:
    """The registry record of session `sid` of `ws`. A malformed id and a session `ws` does not have (another
    workspace's included) are the same 404 `code`, so ids do not leak; a malformed id is never used as a key.
    `code`: the session routes answer `not_found`, the page routes (session_pages.py) `session_not_found`."""
    if not _ID_RE.fullmatch(sid):
        raise ApiError(404, code, "session not found")
    record = await c.registry.get(ws, sid)
    if record is None:
        raise ApiError(404, code, "session not found")
    return record


async def supervisor_call(c: AppContext, method: str, *args: Any) -> Any:
    """A control-plane call; the supervisor being down or full is 503, never a 500."""
    try:
        handle = await asyncio.to_thread(c.supervisor)
    except Exception:
        raise ApiError(503, "supervisor_unavailable", "the session supervisor is not running",
                       headers={"Retry-After": "5"}) from None
    try:
        return await asyncio.wait_for(getattr(handle, method).remote(*args), SUPERVISOR_TIMEOUT_S)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc, PlacementError):
            raise ApiError(503, "no_capacity", "every node is at its session limit",
                           headers={"Retry-After": "30"}) from None
        if isinstance(exc, QuotaExceeded):
            raise ApiError(409, "quota_exceeded", "this workspace already has its maximum number of sessions") from None
        raise
    except (TimeoutError, ray.exceptions.RayActorError):
        raise ApiError(503, "supervisor_unavailable", "the session supervisor did not answer",
                       headers={"Retry-After": "5"}) from None
