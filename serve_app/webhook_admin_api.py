"""Webhook delivery administration: retry policy, dead letters, replay.

* `PUT /v1/workspaces/{ws}/webhook/policy` `{max_attempts, base_delay_s, max_delay_s}` (absent: defaults)
* `GET /v1/workspaces/{ws}/webhook/dead-letters?offset=&limit=` oldest first
* `POST /v1/workspaces/{ws}/webhook/dead-letters/replay` `{event_ids?}`: delivered again, same `X-Event-Id`
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, workspace, writable_workspace
from wa_ray.serve_app.message_models import DeadLetter, DeadLetters, ReplayIn, ReplayOut, WebhookPolicyIn
from wa_ray.storage.outbox import Outbox, RetryPolicy

router = APIRouter()


def _outbox(c: AppContext) -> Outbox:
    return Outbox(c.redis, RetryPolicy.from_config(c.config))


# The policy routes answer the policy in force as a plain object; the example is the built-in default.
_POLICY_ANSWER = {200: {"content": {"application/json": {"example": RetryPolicy().__dict__}}}}


@router.put("/v1/workspaces/{ws}/webhook/policy", responses=_POLICY_ANSWER)
async def put_policy(body: WebhookPolicyIn, ws: str = Depends(writable_workspace),
                     c: AppContext = Depends(ctx)) -> dict:
    policy = await _outbox(c).set_policy(ws, body.model_dump(exclude_none=True))
    return policy.__dict__


@router.get("/v1/workspaces/{ws}/webhook/policy", responses=_POLICY_ANSWER)
async def get_policy(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> dict:
    return (await _outbox(c).policy(ws)).__dict__


@router.get("/v1/workspaces/{ws}/webhook/dead-letters", response_model=DeadLetters)
async def dead_letters(ws: str = Depends(workspace), c: AppContext = Depends(ctx),
                       offset: int = Query(0, ge=0, le=10**12), limit: int = Query(100, ge=1, le=1000)) -> DeadLetters:
    total, items = await _outbox(c).dead_letters(ws, offset, limit)
    return DeadLetters(total=total, items=[DeadLetter(**i) for i in items])


@router.post("/v1/workspaces/{ws}/webhook/dead-letters/replay", response_model=ReplayOut)
async def replay(body: ReplayIn | None = Body(default=None), ws: str = Depends(writable_workspace),
                 c: AppContext = Depends(ctx)) -> ReplayOut:
    return ReplayOut(replayed=await _outbox(c).replay(ws, body.event_ids if body else None))
