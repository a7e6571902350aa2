"""`POST /v1/workspaces/{ws}/messages:batch`: up to 1,000 messages in one call, each with its own result.

Each item is what `POST .../messages` takes, plus its own optional `idempotency_key`; each is validated,
routed, counted and accepted exactly as a call of its own would be, and its result is what that call would
have answered: `{status: 202, message_id, provider}`, or `{status: 4xx, error}` in the error shape. One bad
item refuses only itself. The answer is 200 with the results in the items' order; a body that is not a
batch at all (not JSON, no `messages`, more than 1,000, over 4 MiB) is refused whole.

Order: the accepts go as scripts of 100 items each, each sent as soon as its items are routed, in the items'
order on one pipeline after Redis was made to know the script (storage/messages.py `start_accepts`), so the
messages of one session are queued in the order the batch lists them, and Redis runs one chunk while the
next is routed. An item whose script failed (Redis trouble) is raised as the single call's would be: the
batch answers 503 and a retry with the same keys repeats nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from wa_ray.serve_app import messages_api
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import writable_workspace
from wa_ray.serve_app.errors import ApiError, error_body, validation_error
from wa_ray.serve_app.openapi import errors
from wa_ray.serve_app.provider_selector import Snapshot
from wa_ray.serve_app.send_models import AnySend, SendMessage
from wa_ray.storage.messages import ACCEPT_CHUNK, Accepted
from wa_ray.storage.plan_limits import PlanLimitStore
from wa_ray.ids import new_ids
from wa_ray.message_kinds import Kind

router = APIRouter(tags=["messages"])
MAX_ITEMS = 1000
_ITEM = TypeAdapter(SendMessage)


class BatchIn(BaseModel):
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"messages": [
        {"to": "15551230001", "text": "Your order shipped", "idempotency_key": "order-1001"},
        {"to": "15551230002", "type": "image", "media": {"url": "https://cdn.example.com/p.jpg"},
         "caption": "New in", "priority": "bulk", "idempotency_key": "promo-7-15551230002"}]}]}}
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS, description=(
        "each a body of POST /v1/workspaces/{ws}/messages, plus an optional `idempotency_key` (1-200 characters)"))


class ItemResult(BaseModel):
    index: int
    status: int = Field(description="what POST .../messages would have answered for this item: 202, or a 4xx")
    message_id: str | None = None
    provider: str | None = None
    error: dict[str, Any] | None = Field(default=None, description="the error shape's `error`, for a 4xx")


class BatchOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"accepted": 1, "refused": 1, "results": [
        {"index": 0, "status": 202, "message_id": "msg_5f0c1a2b3c4d5e6f", "provider": "webjs"},
        {"index": 1, "status": 422, "error": {"code": "validation_error", "message": "request is not valid",
                                              "details": {"errors": [{"loc": ["to"], "msg": "value is not valid",
                                                                      "type": "string_pattern_mismatch"}]}}}]}]}}
    accepted: int
    refused: int
    results: list[ItemResult]


# Results are plain dicts answered as they are: a Response skips FastAPI's validation and serialization of the
# answer, a second pass over up to 1,000 results. `ItemResult` and `BatchOut` document their shape.
Result = dict[str, Any]


def _refused(index: int, exc: ApiError) -> Result:
    return {"index": index, "status": exc.status, "message_id": None, "provider": None,
            "error": error_body(exc.code, exc.message, exc.details)["error"]}


def _accepted(index: int, message_id: str, provider: str) -> Result:
    return {"index": index, "status": 202, "message_id": message_id, "provider": provider, "error": None}


def _may_wait(send: AnySend, snap: Snapshot) -> bool:
    """Whether preparing this item may wait on Redis or the network (a media or quoted message to check, a
    session the snapshot does not know, a strict route, a daily limit to charge). A hint, not a rule: the
    others are prepared one after the other, since a task each cost more than their preparation (1,000 tasks
    a batch); a wrong answer costs time, never a result."""
    return (send.kind != Kind.TEXT or getattr(send, "reply_to", None) is not None or send.strict
            or (send.session_id is not None and send.session_id not in snap.sessions)
            or snap.messages_per_day is not None)


def _parsed(index: int, raw: dict[str, Any]) -> tuple[AnySend, str | None] | Result:
    item = dict(raw)
    key = item.pop("idempotency_key", None)
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= 200):
        return _refused(index, ApiError(422, "validation_error", "request is not valid", {"errors": [
            {"loc": ["idempotency_key"], "msg": "1 to 200 characters", "type": "string_type"}]}))
    try:
        return _ITEM.validate_python(item), key
    except ValidationError as exc:
        return _refused(index, ApiError(422, "validation_error", "request is not valid",
                                        {"errors": [validation_error(e) for e in exc.errors()]}))


@router.post("/v1/workspaces/{ws}/messages:batch", response_model=BatchOut, responses=errors(400, 409, 413, 422),
             summary="Up to 1,000 messages in one call, each accepted (or refused) as a call of its own")
async def send_batch(body: BatchIn, request: Request, ws: str = Depends(writable_workspace)) -> Response:
    c: AppContext = request.app.state.ctx
    snap = await c.selector.snapshot(ws)
    results: list[Result | None] = [None] * len(body.messages)
    parsed: dict[int, tuple[AnySend, str | None]] = {}
    for index, raw in enumerate(body.messages):
        one = _parsed(index, raw)
        if isinstance(one, dict):
            results[index] = one
        else:
            parsed[index] = one

    ids = dict(zip(parsed, new_ids("msg", len(parsed)), strict=True))

    async def prepared(index: int) -> tuple[int, Any]:
        send, key = parsed[index]
        try:
            msg, fp = await messages_api.prepare(c, snap, ws, send, ids[index])
            return index, (msg, fp, key, await messages_api.charge(c, snap, ws, key))
        except ApiError as exc:
            return index, _refused(index, exc)

    # One script per ACCEPT_CHUNK items, started as soon as they are prepared and in the items' order, so Redis
    # runs a chunk while the next one is prepared (storage/messages.py `start_accepts`). The items whose
    # preparation may wait on I/O are prepared side by side; the others, in turn (see `_may_wait`).
    await c.messages.load_accept_many()
    order = sorted(parsed)
    chunks: list[tuple[list[tuple[int, Any]], asyncio.Future[list[Any]]]] = []
    for start in range(0, len(order), ACCEPT_CHUNK):
        chunk = order[start:start + ACCEPT_CHUNK]
        waiting = [i for i in chunk if _may_wait(parsed[i][0], snap)]
        outcomes = dict(await asyncio.gather(*(prepared(i) for i in waiting))) if waiting else {}
        ready: list[tuple[int, Any]] = []
        for index in chunk:
            outcome = outcomes[index] if index in outcomes else (await prepared(index))[1]
            if isinstance(outcome, dict):
                results[index] = outcome
            else:
                ready.append((index, outcome))
        if ready:
            chunks.append((ready, c.messages.start_accepts([(msg, key, fp) for _, (msg, fp, key, _) in ready])))

    async def settled(index: int, msg: Any, charged: bool, accepted: Any) -> None:
        try:
            if isinstance(accepted, Exception):  # its script failed: as its own call would have, 503
                if charged:
                    await PlanLimitStore(c.redis).refund_messages(ws)
                raise accepted
            answer = await messages_api.settle(c, ws, msg, accepted, charged)
            results[index] = _accepted(index, answer.message_id, answer.provider)
        except ApiError as exc:
            results[index] = _refused(index, exc)

    later = []
    for ready, accepts in chunks:
        for (index, (msg, _, _, charged)), accepted in zip(ready, await accepts, strict=True):
            if isinstance(accepted, Accepted) and accepted.created and not charged:
                results[index] = _accepted(index, msg.message_id, msg.provider)  # what `settle` answers a new one
            else:
                later.append(settled(index, msg, charged, accepted))
    await asyncio.gather(*later)
    final = [r for r in results if r is not None]
    accepted = sum(1 for r in final if r["status"] == 202)
    return Response(orjson.dumps({"accepted": accepted, "refused": len(final) - accepted, "results": final}),
                    media_type="application/json")
