"""A workspace's webhook endpoints: several, each with its own subscriptions, headers, batching and dead letters.

* `POST /v1/workspaces/{ws}/webhooks` -> 201 the endpoint (with its `secret` once, when the service made it)
* `GET /v1/workspaces/{ws}/webhooks`, `GET|PATCH|DELETE /v1/workspaces/{ws}/webhooks/{id}`
* `GET /v1/workspaces/{ws}/webhooks/{id}/dead-letters`, `POST .../dead-letters/replay`

The first form, `PUT /v1/workspaces/{ws}/webhook` (one URL, every event), stays as it was beside these.
A read never returns a secret or a header value. Another workspace's endpoint id is 404, as is a
made-up one: a caller learns nothing of endpoints it does not own.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Body, Depends, Query, Response

from wa_ray.events import EVENT_TYPES
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx, workspace, writable_workspace
from wa_ray.serve_app.egress_check import allowed_url
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.message_models import DeadLetter, DeadLetters, ReplayIn, ReplayOut
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.webhook_endpoint_models import EndpointIn, EndpointList, EndpointOut, EndpointPatch
from wa_ray.storage.outbox import Outbox, RetryPolicy
from wa_ray.storage.webhook_endpoints import (
    MAX_ENDPOINTS,
    BatchPolicy,
    EndpointLimit,
    header_problem,
    new_secret,
    pattern_problem,
)

router = APIRouter(tags=["webhooks"])
ENDPOINT_ID = r"^we_[0-9a-f]{16}$"
SEEN_WITHIN_S = 3.0  # the dispatcher reads its lanes each second; longer means it is down (it reads them first)
_PATH = "/v1/workspaces/{ws}/webhooks"


def _checked_events(events: list[str]) -> list[str]:
    for i, pattern in enumerate(events):
        if problem := pattern_problem(pattern, EVENT_TYPES):
            raise ApiError(422, "unknown_event_type", f"events[{i}]: {problem}", {"field": "events", "index": i})
    return list(dict.fromkeys(events))


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    for i, (name, value) in enumerate(sorted(headers.items())):
        if problem := header_problem(name, value):
            raise ApiError(422, "invalid_header", f"headers: {problem}", {"field": "headers", "index": i})
    if len({name.lower() for name in headers}) != len(headers):
        raise ApiError(422, "invalid_header", "headers: a name is given twice", {"field": "headers"})
    return headers


def _batch(body: EndpointIn | EndpointPatch) -> BatchPolicy | None:
    return None if body.batch is None else BatchPolicy(body.batch.max_events, body.batch.max_wait_ms)


async def _endpoint_id(eid: str) -> str:
    if not re.fullmatch(ENDPOINT_ID, eid):
        raise ApiError(404, "not_found", "webhook endpoint not found")
    return eid


@router.post(_PATH, status_code=201, response_model=EndpointOut, response_model_exclude_none=False,
             responses=errors(400, 409, 413, 422), summary="Add a webhook endpoint (at most 10 per workspace)")
async def create(body: EndpointIn, ws: str = Depends(writable_workspace), c: AppContext = Depends(ctx)) -> EndpointOut:
    url = await allowed_url(c, body.url, "url")
    events, headers = _checked_events(body.events), _checked_headers(body.headers)
    generated = new_secret() if body.secret is None else None
    try:
        # answered once the dispatcher copies this workspace's events to it: what is published after the 201
        # reaches the endpoint (a workspace's first endpoint waits up to a second for that)
        endpoint = await c.webhook_endpoints.create(ws, url, body.secret or generated or "", events, headers,
                                                    _batch(body), body.description, seen_within_s=SEEN_WITHIN_S)
    except EndpointLimit:
        raise ApiError(409, "quota_exceeded", f"a workspace has at most {MAX_ENDPOINTS} webhook endpoints") from None
    return EndpointOut.of(endpoint.public(), generated)


@router.get(_PATH, response_model=EndpointList, responses=errors(), summary="This workspace's webhook endpoints")
async def list_endpoints(ws: str = Depends(workspace), c: AppContext = Depends(ctx)) -> EndpointList:
    return EndpointList(items=[EndpointOut.of(e.public()) for e in await c.webhook_endpoints.endpoints(ws)])


@router.get(_PATH + "/{eid}", response_model=EndpointOut, responses=errors(404), summary="One webhook endpoint")
async def get_endpoint(ws: str = Depends(workspace), eid: str = Depends(_endpoint_id),
                       c: AppContext = Depends(ctx)) -> EndpointOut:
    endpoint = await c.webhook_endpoints.get(ws, eid)
    if endpoint is None:
        raise ApiError(404, "not_found", "webhook endpoint not found")
    return EndpointOut.of(endpoint.public())


@router.patch(_PATH + "/{eid}", response_model=EndpointOut, responses=errors(400, 404, 413, 422),
              summary="Change a webhook endpoint (only the fields given)")
async def patch_endpoint(body: EndpointPatch, ws: str = Depends(writable_workspace),
                         eid: str = Depends(_endpoint_id), c: AppContext = Depends(ctx)) -> EndpointOut:
    changes: dict = {}
    given = body.model_fields_set
    if "url" in given and body.url is not None:
        changes["url"] = await allowed_url(c, body.url, "url")
    if "secret" in given and body.secret is not None:
        changes["secret"] = body.secret
    if "events" in given and body.events is not None:
        changes["events"] = _checked_events(body.events)
    if "headers" in given and body.headers is not None:
        changes["headers"] = _checked_headers(body.headers)
    if "batch" in given:
        changes["batch"] = _batch(body)
    if "description" in given and body.description is not None:
        changes["description"] = body.description
    endpoint = await c.webhook_endpoints.update(ws, eid, changes)
    if endpoint is None:
        raise ApiError(404, "not_found", "webhook endpoint not found")
    return EndpointOut.of(endpoint.public())


@router.delete(_PATH + "/{eid}", status_code=204, response_class=Response, responses=errors(404),
               summary="Remove a webhook endpoint, its queue and its dead letters")
async def delete_endpoint(ws: str = Depends(writable_workspace), eid: str = Depends(_endpoint_id),
                          c: AppContext = Depends(ctx)) -> Response:
    if not await c.webhook_endpoints.delete(ws, eid):
        raise ApiError(404, "not_found", "webhook endpoint not found")
    return Response(status_code=204)


@router.get(_PATH + "/{eid}/dead-letters", response_model=DeadLetters, responses=errors(404),
            summary="What this endpoint never took, oldest first")
async def dead_letters(ws: str = Depends(workspace), eid: str = Depends(_endpoint_id), c: AppContext = Depends(ctx),
                       offset: int = Query(0, ge=0, le=10**12),
                       limit: int = Query(100, ge=1, le=1000)) -> DeadLetters:
    await _existing(c, ws, eid)
    total, items = await Outbox(c.redis, RetryPolicy.from_config(c.config)).dead_letters(ws, offset, limit, eid)
    return DeadLetters(total=total, items=[DeadLetter(**i) for i in items])


@router.post(_PATH + "/{eid}/dead-letters/replay", response_model=ReplayOut, responses=errors(400, 404, 413, 422),
             summary="Deliver this endpoint's dead letters again (same ids)")
async def replay(body: ReplayIn | None = Body(default=None), ws: str = Depends(writable_workspace),
                 eid: str = Depends(_endpoint_id), c: AppContext = Depends(ctx)) -> ReplayOut:
    await _existing(c, ws, eid)
    outbox = Outbox(c.redis, RetryPolicy.from_config(c.config))
    return ReplayOut(replayed=await outbox.replay(ws, body.event_ids if body else None, eid))


async def _existing(c: AppContext, ws: str, eid: str) -> None:
    if await c.webhook_endpoints.get(ws, eid) is None:
        raise ApiError(404, "not_found", "webhook endpoint not found")
