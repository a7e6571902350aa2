"""A workspace's numbers: the primary one (PUT .../sessions/{sid}) and the plan limits an admin sets
(GET|PUT .../limits).

Over a limit is 409 `plan_limit` with `{limit, current, max}` (`plan_limit_error`), from here, from session
creation (sessions_api.py) and from POST /messages (messages_api.py). Another workspace's session is 404
like any id a key may not see; PUT .../limits needs an admin key (403 `forbidden` for a workspace key of
that workspace) and is checked before the body, so a refused key learns nothing from a 422.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import admin, ctx, session_record, workspace, writable_workspace
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import SessionOut, SetSession
from wa_ray.serve_app.number_models import PlanLimitsIn, PlanLimitsOut
from wa_ray.serve_app.openapi import errors
from wa_ray.storage.numbers import NumberStore
from wa_ray.storage.plan_limits import PlanLimitStore

router = APIRouter(tags=["numbers"])

LIMIT_NAMES = ("max_numbers", "messages_per_day")


def plan_limit_error(limit: str, current: int, maximum: int | None) -> ApiError:
    """409 `plan_limit`: what the workspace's plan allows (`max`) and where it stands (`current`)."""
    what = "numbers" if limit == "max_numbers" else "messages today (UTC)"
    return ApiError(409, "plan_limit", f"the workspace's plan allows {maximum} {what}; it has {current}",
                    {"limit": limit, "current": current, "max": maximum})


async def admin_workspace(ws: str, request: Request) -> str:
    """A workspace the caller may see (404 otherwise), and an admin caller (403 otherwise)."""
    await workspace(ws, request)
    await admin(request)
    return ws


@router.put("/v1/workspaces/{ws}/sessions/{sid}", response_model=SessionOut, tags=["sessions"],
            responses=errors(400, 413, 422),
            summary="Make the session the workspace's primary number, or clear it")
async def set_session(sid: str, body: SetSession, ws: str = Depends(writable_workspace),
                      c: AppContext = Depends(ctx)) -> SessionOut:
    record = await session_record(c, ws, sid)
    numbers = NumberStore(c.redis)
    if body.primary:
        await numbers.set_primary(ws, sid)
    else:
        await numbers.clear_primary(ws, sid)
    c.selector.invalidate(ws)  # this replica's next send sees it at once (others within the snapshot TTL)
    return SessionOut.from_record(record, await numbers.primary(ws))


@router.get("/v1/workspaces/{ws}/limits", response_model=PlanLimitsOut, responses=errors(),
            summary="The workspace's plan limits and its usage")
async def get_limits(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> PlanLimitsOut:
    return await _limits_out(c, ws)


@router.put("/v1/workspaces/{ws}/limits", response_model=PlanLimitsOut, responses=errors(400, 413, 422, notes={
    403: "Bad signature, unknown or revoked key, or not an admin key (a workspace key reads its limits, never "
         "sets them)"}),
            summary="Set the workspace's plan limits (admin keys only; null: unlimited)")
async def put_limits(body: PlanLimitsIn, ws: str = Depends(admin_workspace),
                     c: AppContext = Depends(ctx)) -> PlanLimitsOut:
    await PlanLimitStore(c.redis).set(ws, body.limits())
    c.selector.invalidate(ws)
    return await _limits_out(c, ws)


async def _limits_out(c: AppContext, ws: str) -> PlanLimitsOut:
    store = PlanLimitStore(c.redis)
    return PlanLimitsOut.of(await store.get(ws), await NumberStore(c.redis).count(ws), await store.messages_today(ws))
