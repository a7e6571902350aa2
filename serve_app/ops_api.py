"""Operations routes: liveness, readiness, Prometheus metrics.

`/healthz` is open (it checks nothing). `/metrics` and the details of
`/readyz` are an operator's: they name internals (nodes, placements, queue
depths) and a scrape folds up to 50k events per workspace, so an anonymous
caller must not be able to trigger one. An operator is either

* Prometheus with `Authorization: Bearer <WA_METRICS_TOKEN>` (compared as a
  SHA-256 digest in constant time; only the digest reaches the processes), or
* a request HMAC-signed with an admin key (like any /v1 call).

Without a credential `/metrics` is 401 and `/readyz` answers only
`{"ready": bool}` with 200/503, which is what a load balancer's probe needs; a
credential that is presented and wrong is 401/403 on both.

/metrics reports what Redis holds (see storage/metrics.py), so any replica
answers for the whole service; the `wa_ingress_*` gauges are the answering
replica's own (label `replica` = its pid).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

import ray
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import caller, ctx
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import Check, ErrorBody, Health, Readiness
from wa_ray.serve_app.prometheus import render
from wa_ray.storage.ban_risk import risk_of
from wa_ray.storage.session_metrics import per_session
from wa_ray import NAMESPACE

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 3.0
BROWSER_HOST_PREFIX = "browser-host:"


@router.get("/healthz", response_model=Health, summary="The process is up (no dependency is checked)")
async def healthz() -> Health:
    return Health(status="ok")


_HMAC_HEADERS = ("x-key-id", "x-signature", "x-timestamp", "x-nonce")


async def operator(request: Request, c: AppContext) -> bool:
    """True for an operator's request, False for one without a credential; a wrong credential raises."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        expected = c.config.metrics_token_sha256
        presented = hashlib.sha256(token.strip().encode()).hexdigest()
        if scheme.lower() == "bearer" and expected and hmac.compare_digest(presented, expected):
            return True
        raise ApiError(403, "forbidden", "not an operator credential")
    if any(h in request.headers for h in _HMAC_HEADERS):
        if (await caller(request)).is_admin:  # 401/403 for a bad signature, rate limited per key
            return True
        raise ApiError(403, "forbidden", "admin key or the metrics token required")
    return False


@router.get("/readyz", response_model=Readiness, response_model_exclude_none=True,
            responses={503: {"model": Readiness}, 401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
            summary="Ready: Redis, Ray, the supervisor and a browser host are reachable (503 otherwise)",
            description="Anonymous callers get `{ready}` only; with an operator credential (admin-signed "
                        "request or `Authorization: Bearer` metrics token) also each check and the reasons.")
async def readyz(request: Request, c: AppContext = Depends(ctx)) -> JSONResponse:
    detailed = await operator(request, c)
    checks = dict(zip(("redis", "ray", "supervisor", "browser_host"),
                      await asyncio.gather(_redis(c), _ray(), _supervisor(c), _browser_hosts()), strict=True))
    reasons = [f"{name}: {check.detail}" for name, check in checks.items() if not check.ok]
    body = Readiness(ready=not reasons)
    if detailed:
        body = Readiness(ready=not reasons, status="not_ready" if reasons else "ready", checks=checks,
                         reasons=reasons)
    return JSONResponse(body.model_dump(exclude_none=True), 503 if reasons else 200)


@router.get("/metrics", response_class=Response, summary="Prometheus text format (operator credential)",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                       401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
async def metrics(request: Request, c: AppContext = Depends(ctx)) -> Response:
    if not await operator(request, c):
        raise ApiError(401, "unauthenticated", "an operator credential is required (Authorization: Bearer "
                       "with the metrics token, or an admin-signed request)", headers={"WWW-Authenticate": "Bearer"})
    snapshot = await c.metrics.snapshot()
    gate = getattr(request.app.state, "admission", None)
    local = {**c.hub.stats(), **(gate.stats() if gate else {}), "asyncio_tasks": len(asyncio.all_tasks())}
    sessions = (await per_session(c.redis, c.config.metrics_session_max, risk_of) if c.config.metrics_per_session
                else None)  # opt-in: one series set per number (storage/session_metrics.py)
    return Response(render(snapshot, local, str(os.getpid()), sessions), media_type=CONTENT_TYPE_LATEST)


async def _redis(c: AppContext) -> Check:
    try:
        await asyncio.wait_for(c.redis.ping(), CHECK_TIMEOUT_S)
        return Check(ok=True)
    except Exception as exc:
        return Check(ok=False, detail=type(exc).__name__)


async def _ray() -> Check:
    return Check(ok=True) if ray.is_initialized() else Check(ok=False, detail="not connected")


async def _supervisor(c: AppContext) -> Check:
    try:
        handle = await asyncio.to_thread(c.supervisor)
        placed = await asyncio.wait_for(handle.placements.remote(), CHECK_TIMEOUT_S)
        return Check(ok=True, detail=f"{len(placed)} sessions placed")
    except ValueError:
        return Check(ok=False, detail="not running")
    except Exception as exc:
        return Check(ok=False, detail=type(exc).__name__)


async def _browser_hosts() -> Check:
    """Ready when at least one node's browser host answers; each host's browser flag is reported."""
    if not ray.is_initialized():  # ray.util calls would start a local cluster rather than fail
        return Check(ok=False, detail="not connected to Ray")

    def find() -> list[object]:  # GCS lookups block: run them off the event loop
        named = ray.util.list_named_actors(all_namespaces=True)
        return [ray.get_actor(a["name"], namespace=NAMESPACE) for a in named
                if a["namespace"] == NAMESPACE and a["name"].startswith(BROWSER_HOST_PREFIX)]

    try:
        handles = await asyncio.to_thread(find)
        if not handles:
            return Check(ok=False, detail="no browser host running")
        replies = await asyncio.gather(*(asyncio.wait_for(h.ping.remote(), CHECK_TIMEOUT_S)  # type: ignore[attr-defined]
                                         for h in handles),
                                       return_exceptions=True)
    except Exception as exc:
        return Check(ok=False, detail=type(exc).__name__)
    alive = [r for r in replies if isinstance(r, dict)]
    detail = f"{len(alive)}/{len(handles)} reachable; browsers up: {sum(1 for r in alive if r.get('browser'))}"
    return Check(ok=bool(alive), detail=detail)
