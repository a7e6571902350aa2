"""Request dependencies shared by the routers: context, caller, workspace scope, id checks."""

from __future__ import annotations

import re

from fastapi import Depends, Request

from serve_app.auth import Principal
from serve_app.context import AppContext
from serve_app.errors import ApiError
from wa_ray.ids import ID_PATTERN

_ID_RE = re.compile(ID_PATTERN)


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def check_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ApiError(404, "not_found", f"{what} not found")  # never echo or use a malformed id
    return value


async def caller(request: Request, c: AppContext = Depends(ctx)) -> Principal:
    return await c.auth.verify(request)


async def workspace(ws: str, who: Principal = Depends(caller)) -> str:
    check_id(ws, "workspace")
    if not who.may_access(ws):
        raise ApiError(404, "not_found", "workspace not found")  # 404, not 403: ids do not leak
    return ws


async def writable_workspace(ws: str = Depends(workspace), who: Principal = Depends(caller)) -> str:
    if not who.may_write:
        raise ApiError(403, "forbidden", "this key is read-only")
    return ws


async def session_record(c: AppContext, ws: str, sid: str) -> dict[str, str]:
    record = await c.registry.get(ws, check_id(sid, "session"))
    if record is None:
        raise ApiError(404, "not_found", "session not found")
    return record
