"""The HTTP ingress: REST for backends, SSE for browsers, the console page, metrics, on Ray Serve.

`build_app` assembles one FastAPI app per replica from small routers:
sessions_api (lifecycle, QR), messages_api (send, status), workspace_api
(workspaces, webhook, browser tokens), events_api (SSE), admin_api (audit),
ops_api (healthz, readyz, metrics) and console (the page and its cookie).
Middleware, outermost first: admission control sheds overload with 503 before
any work (admission.py), then each request gets an id and mutating calls their
audit entry, then body limits. OpenAPI is at /openapi.json, docs at /docs.

Overload is never a 500: the replica sheds with 503 `overloaded` (+ Retry-After)
once it has more in flight than it can turn around; Serve's own queue limit
behind it (`max_queued_requests`) answers 503 with Retry-After too, should the
proxy ever queue that many.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.handle import DeploymentHandle

from wa_ray.serve_app import admin_api, console, docs_page, errors, events_api, openapi, ops_api, sessions_api
from wa_ray.serve_app import batch_send_api, data_protection_api, webhook_endpoints_api, workspace_api
from wa_ray.serve_app import (ban_risk_api, campaigns_api, conversations_api, media_policy_api, numbers_api,
                              stats_api, sync_api)
from wa_ray.serve_app.admission import Admission
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.messages_api import router as messages_router
from wa_ray.serve_app.middleware import BodyLimit, RequestContext
from wa_ray.config import RuntimeConfig


def build_app(context: AppContext) -> FastAPI:
    """One FastAPI app per replica, built in the replica, holding that replica's context."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await context.hub.close()

    # redirect_slashes off: Starlette builds that redirect's Location from the Host header, which the
    # caller chooses (an open redirect); a path with a stray slash is a plain 404
    api = FastAPI(title="wa-ray", version="0.1.0", default_response_class=JSONResponse, lifespan=lifespan,
                  redirect_slashes=False, docs_url=None, redoc_url=None)  # /docs: docs_page, from our own assets
    errors.install(api)
    openapi.install(api)
    api.state.ctx = context
    gate = api.state.admission = Admission(context.redis, context.audit)
    for router in (sessions_api.router, messages_router, batch_send_api.router, workspace_api.router,
                   events_api.router, admin_api.router, ops_api.router, console.router, media_policy_api.router,
                   conversations_api.router, sync_api.router, ban_risk_api.router, campaigns_api.router,
                   stats_api.router, numbers_api.router, webhook_endpoints_api.router, docs_page.router,
                   data_protection_api.router):
        api.include_router(router)
    api.add_middleware(BodyLimit)
    api.add_middleware(RequestContext, audit=context.audit)  # outside BodyLimit: oversized bodies are audited too
    api.add_middleware(gate.middleware)  # outermost: a shed request costs no body read, auth or Redis call
    return api


# Serve's default of 5 ongoing requests per replica lets five open SSE streams starve every other
# call (a sixth request gets no answer); the replica is async and I/O bound.
# The replica sheds overload itself (admission.py) long before 2000 are in flight; if the proxy still
# queues past max_queued_requests, Serve answers 503 (plain text, not our shape) with this Retry-After.
@serve.deployment(name="Ingress", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=2000,
                  max_queued_requests=4000, backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
                  logging_config={"enable_access_log": False})
@serve.ingress()
class Ingress:
    def __init__(self, config: RuntimeConfig, selector: DeploymentHandle | None = None) -> None:
        # selector: the ProviderSelector's handle, injected by `Ingress.bind(config, ProviderSelector.bind(config))`
        # (wa_ray/entry/wiring.py); None: decide the provider locally (SelectorClient)
        self._context = AppContext.build(config, selector)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self._context)
