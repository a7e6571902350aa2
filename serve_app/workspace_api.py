"""Workspace-level routes: which workspaces a key sees, the webhook target, browser tokens."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Response

from wa_ray.serve_app.auth import Principal
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import caller, ctx, workspace, writable_workspace
from wa_ray.serve_app.egress_check import allowed_url
from wa_ray.serve_app.models import (
    ConsoleToken,
    ConsoleTokenRequest,
    StreamToken,
    StreamTokenRequest,
    WebhookConfig,
    WorkspaceList,
)
from wa_ray.serve_app.openapi import errors
from wa_ray.storage import keys
from wa_ray.storage.webhooks import WebhookTarget

router = APIRouter(tags=["workspaces"])


@router.get("/v1/workspaces", response_model=WorkspaceList, responses=errors(),
            summary="Workspaces this key can see (admins: every workspace that has had a session)")
async def list_workspaces(who: Principal = Depends(caller), c: AppContext = Depends(ctx)) -> WorkspaceList:
    if who.workspace_id is not None:
        return WorkspaceList(workspaces=[who.workspace_id])
    return WorkspaceList(workspaces=sorted(await c.redis.smembers(keys.workspaces())))


@router.put("/v1/workspaces/{ws}/webhook", status_code=204, response_class=Response,
            responses=errors(400, 413, 422), summary="Where this workspace's signed webhooks go")
async def set_webhook(body: WebhookConfig, ws: str = Depends(writable_workspace),
                      c: AppContext = Depends(ctx)) -> Response:
    url = await allowed_url(c, body.url, "url")  # checked as given: the string stored is the string sent to
    await c.webhooks.set(ws, WebhookTarget(url, body.secret))
    return Response(status_code=204)


@router.post("/v1/workspaces/{ws}/stream-tokens", status_code=201, response_model=StreamToken,
             responses=errors(400, 413, 422),
             summary="A short-lived token a browser passes as ?token= to the events stream")
async def stream_token(body: StreamTokenRequest | None = Body(default=None), ws: str = Depends(workspace),
                       who: Principal = Depends(caller), c: AppContext = Depends(ctx)) -> StreamToken:
    req = body or StreamTokenRequest()
    token, claims = c.auth.mint("stream", who, ws, req.ttl_s, sid=req.session_id)
    return StreamToken(token=token, expires_at=claims.exp, workspace_id=ws, session_id=req.session_id)


@router.post("/v1/console-tokens", status_code=201, response_model=ConsoleToken, responses=errors(400, 413, 422),
             summary="A short-lived console token: open the returned URL, the console turns it into a cookie")
async def console_token(body: ConsoleTokenRequest | None = Body(default=None), who: Principal = Depends(caller),
                        c: AppContext = Depends(ctx)) -> ConsoleToken:
    req = body or ConsoleTokenRequest()
    token, claims = c.auth.mint("console", who, req.workspace_id, req.ttl_s)
    return ConsoleToken(token=token, expires_at=claims.exp, workspace_id=claims.ws, url=f"/console#token={token}")
