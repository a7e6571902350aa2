"""The Cloud API simulator as a Starlette app, and `wa-sim cloud`.

    POST /{version}/{phone_number_id}/messages   Meta's send endpoint (graph_api)
    POST /{version}/{phone_number_id}/media      media upload; GET/DELETE /{version}/{media_id} (media)
    *    /_control/...                           the simulator's control API (control)

Anything else answers a Graph-style 400 "Unknown path components", as Graph does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wa_ray.simulator.cloud_api import control, errors, media_api
from wa_ray.simulator.cloud_api.config import CloudSimConfig
from wa_ray.simulator.cloud_api.graph_api import graph_error, messages_endpoint
from wa_ray.simulator.cloud_api.state import SimState

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def unknown_path(request: Request) -> Response:
    return graph_error(errors.unknown_path(request.url.path))


def create_app(config: CloudSimConfig | None = None) -> Starlette:
    state = SimState(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            state.lifecycle.cancel_all()
            await state.dispatcher.aclose()
            await state.aclose()
            state.loop = None

    app = Starlette(
        routes=[
            *control.routes,
            Route("/{version}/{phone_number_id}/messages", messages_endpoint, methods=["POST"]),
            Route("/{version}/{phone_number_id}/media", media_api.upload_endpoint, methods=["POST"]),
            Route("/_media/{media_id}/{nonce}", media_api.download_endpoint, methods=["GET"]),
            Route("/{version}/{media_id}", media_api.media_object_endpoint, methods=["GET", "DELETE"]),
            Route("/{path:path}", unknown_path, methods=ALL_METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.sim = state
    return app


def run(host: str, port: int, log_level: str = "info") -> None:
    """`wa-sim cloud`: serve the simulator with default config until interrupted."""
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
