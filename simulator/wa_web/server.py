"""Starlette app of the WhatsApp Web simulator: the page, its WebSocket, and the phone API."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import segno
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from wa_ray.simulator.wa_web.api_models import (
    BanBody,
    ConflictBody,
    DropBody,
    PairingCodeBody,
    PhoneConfigBody,
    ScanBody,
    SendBody,
    SimConfigBody,
    UnlinkBody,
)
from wa_ray.simulator.wa_web import conversations, phone_kinds
from wa_ray.simulator.wa_web.config import SimConfig
from wa_ray.simulator.wa_web.mms import UploadTooLarge
from wa_ray.simulator.wa_web.state import PageConn, SimError, SimState

STATIC_DIR = Path(__file__).parent / "static"
B = TypeVar("B", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


def error_response(exc: SimError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}, status_code=exc.status
    )


def api(fn: Handler) -> Handler:
    """Turn SimError into the JSON error envelope."""

    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except SimError as exc:
            return error_response(exc)

    return wrapped


async def parse(request: Request, model: type[B]) -> B:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise SimError(400, "invalid_json", str(exc)) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SimError(
            422, "invalid_body", "request body failed validation", {"errors": json.loads(exc.json())}
        ) from exc


def sim(request: Request) -> SimState:
    return request.app.state.sim


def apply_partial(target: object, body: BaseModel, nullable: set[str]) -> None:
    """Copy only the fields the client sent; explicit null is honoured where it means 'never'."""
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name not in nullable:
            continue
        setattr(target, name, value)


# ------------------------------------------------------------------- page
async def index(request: Request) -> Response:
    html = (STATIC_DIR / "index.html").read_text()
    return HTMLResponse(html.replace("{{VERSION}}", sim(request).config.version), headers={"Cache-Control": "no-store"})


async def qr_png(request: Request) -> Response:
    data = request.query_params.get("data", "")
    if not data:
        return error_response(SimError(400, "missing_data", "query parameter 'data' is required"))
    buf = io.BytesIO()
    segno.make(data, error="l", micro=False).save(buf, kind="png", scale=5, border=2)
    return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


async def page_ws(websocket: WebSocket) -> None:
    state: SimState = websocket.app.state.sim
    await websocket.accept()

    async def send(payload: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(payload))

    async def close(code: int) -> None:
        await websocket.close(code=code)

    page = PageConn(page_id=secrets.token_hex(6), send=send, close=close)
    await state.page_connected(page)
    try:
        while True:
            text = await websocket.receive_text()
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                await state.on_page_message(page, data)
    except (WebSocketDisconnect, RuntimeError):
        # RuntimeError: we closed the socket ourselves (drop) and the loop read again.
        pass
    finally:
        await state.page_disconnected(page)


# ------------------------------------------------------------- phone API
@api
async def phone_scan(request: Request) -> Response:
    body = await parse(request, ScanBody)
    device = await sim(request).scan(request.path_params["number"], body.qr, body.pushname)
    return JSONResponse({"device_id": device.device_id})


@api
async def phone_pairing_code(request: Request) -> Response:
    body = await parse(request, PairingCodeBody)
    device = await sim(request).link_with_code(request.path_params["number"], body.code)
    return JSONResponse({"device_id": device.device_id})


@api
async def phone_unlink(request: Request) -> Response:
    body = await parse(request, UnlinkBody)
    removed = await sim(request).unlink(request.path_params["number"], body.device_id)
    return JSONResponse({"unlinked": removed})


@api
async def phone_messages(request: Request) -> Response:
    body = await parse(request, SendBody)
    msg_id = await sim(request).phone_send(request.path_params["number"], body.to, body.body, body.group_id, body.type,
                                           as_lid=body.as_lid, pn_known=body.pn_known)
    return JSONResponse({"id": msg_id})


@api
async def phone_config(request: Request) -> Response:
    state = sim(request)
    phone = state.phone(request.path_params["number"])
    if request.method == "PUT":
        body = await parse(request, PhoneConfigBody)
        apply_partial(phone.config, body, {"delivered_ms", "read_ms", "pushname"})
    c = phone.config
    return JSONResponse(
        {
            "delivered_ms": c.delivered_ms,
            "read_ms": c.read_ms,
            "fail_rate": c.fail_rate,
            "latency_ms": c.latency_ms,
            "pushname": c.pushname,
            "platform": c.platform,
        }
    )


@api
async def phone_inbox(request: Request) -> Response:
    phone = sim(request).phone(request.path_params["number"])
    return JSONResponse({"messages": [e.as_json() for e in phone.inbox]})


@api
async def phone_devices(request: Request) -> Response:
    return JSONResponse({"devices": sim(request).devices_of(request.path_params["number"])})


@api
async def phone_drop(request: Request) -> Response:
    body = await parse(request, DropBody)
    closed = await sim(request).drop(request.path_params["number"], body.seconds)
    return JSONResponse({"closed": closed})


@api
async def phone_ban(request: Request) -> Response:
    body = await parse(request, BanBody)
    await sim(request).ban(request.path_params["number"], body.banned)
    return JSONResponse({"banned": body.banned})


@api
async def phone_conflict(request: Request) -> Response:
    body = await parse(request, ConflictBody)
    hit = await sim(request).conflict(request.path_params["number"], body.seconds)
    return JSONResponse({"pages": hit})


@api
async def mms_upload(request: Request) -> Response:
    """A page's media upload: the body is the file, streamed to the spool (mms.py)."""
    mimetype = request.headers.get("content-type", "application/octet-stream")
    media_type = request.query_params.get("type", "document")
    try:
        upload = await sim(request).mms.receive(request.stream(), mimetype, media_type)
    except UploadTooLarge as exc:
        raise SimError(413, "too_large", str(exc)) from exc
    return JSONResponse({"direct_path": upload.direct_path, "url": f"/_sim/mms{upload.direct_path}",
                         "enc_filehash": upload.sha256, "media_key": secrets.token_hex(16),
                         "size": upload.size})


@api
async def sim_config(request: Request) -> Response:
    cfg = sim(request).config
    if request.method == "PUT":
        body = await parse(request, SimConfigBody)
        apply_partial(cfg, body, {"logout_reload_ms", "default_delivered_ms", "default_read_ms"})
        await sim(request).config_changed()
    return JSONResponse({k: getattr(cfg, k) for k in SimConfigBody.model_fields})


@api
async def sim_stats(request: Request) -> Response:
    return JSONResponse(sim(request).stats())


@api
async def sim_group(request: Request) -> Response:
    gid = request.path_params["group_id"]
    gid = gid if gid.endswith("@g.us") else f"{gid}@g.us"
    return JSONResponse({"messages": [e.as_json() for e in sim(request).groups.get(gid, [])]})


def create_app(config: SimConfig | None = None) -> Starlette:
    state = SimState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.shutdown()

    p = "/_phone/{number}"
    routes = [
        Route("/", index),
        Route("/_sim/qr.png", qr_png),
        WebSocketRoute("/ws", page_ws),
        Route(f"{p}/scan", phone_scan, methods=["POST"]),
        Route(f"{p}/pairing-code", phone_pairing_code, methods=["POST"]),
        Route(f"{p}/unlink", phone_unlink, methods=["POST"]),
        Route(f"{p}/messages", phone_messages, methods=["POST"]),
        Route(f"{p}/config", phone_config, methods=["GET", "PUT"]),
        Route(f"{p}/inbox", phone_inbox, methods=["GET"]),
        Route(f"{p}/devices", phone_devices, methods=["GET"]),
        Route(f"{p}/drop", phone_drop, methods=["POST"]),
        Route(f"{p}/ban", phone_ban, methods=["POST"]),
        Route(f"{p}/conflict", phone_conflict, methods=["POST"]),
        Route("/_sim/config", sim_config, methods=["GET", "PUT"]),
        Route("/_sim/stats", sim_stats, methods=["GET"]),
        Route("/_sim/mms/upload", mms_upload, methods=["POST"]),
        Route("/_sim/groups/{group_id}", sim_group, methods=["GET"]),
        *phone_kinds.routes(api, parse),
        *conversations.routes(api, parse),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = state
    app.state.phone_kinds = phone_kinds.PhoneKinds(state)
    app.state.conversations = conversations.Conversations(state)
    app.state.conversations.install()
    return app


def run(host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
