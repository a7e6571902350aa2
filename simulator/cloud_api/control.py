"""The simulator's control API under `/_control/` (not part of Meta's API).

Tests and the demo use it to play Meta's side: register numbers and tokens,
point webhooks at a callback, turn limits and faults on and off, make a user
write in, read what was accepted, move the clock. Bodies are validated with
pydantic; bad input answers 422 in the project's error shape
`{"error": {"code", "message", "details"}}`. PUT bodies are partial updates:
omitted fields keep their value, an explicit `null` switches a limit off.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wa_ray.simulator.cloud_api.config import PhoneNumber
from wa_ray.simulator.cloud_api.models import (
    ClockIn,
    FailureDeliveryIn,
    FailureRateIn,
    InboundIn,
    InboundMessageIn,
    LimitsIn,
    OutageIn,
    PhoneNumberIn,
    RevokeTokenIn,
    StatusDelaysIn,
    TemplateIn,
    UndeliverableIn,
    WebhookIn,
    WindowIn,
)
from wa_ray.simulator.cloud_api.state import SimState, normalize_number
from wa_ray.simulator.cloud_api.subscription import verify_callback
from wa_ray.simulator.cloud_api.templates import Template

M = TypeVar("M", bound=BaseModel)


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        self.status, self.code, self.message, self.details = status, code, message, details


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status)


async def _body(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False)
        raise ControlError(422, "validation_error", "invalid control request", details) from None


def _state(request: Request) -> SimState:
    return request.app.state.sim


def _apply(target: object, update: BaseModel, skip: tuple[str, ...] = ()) -> None:
    for name in update.model_fields_set:
        if name not in skip:
            setattr(target, name, getattr(update, name))


def _handler(fn):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> JSONResponse:
        try:
            return await fn(request)
        except ControlError as exc:
            return _error(exc.status, exc.code, exc.message, exc.details)

    endpoint.__name__ = fn.__name__
    return endpoint


@_handler
async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@_handler
async def get_config(request: Request) -> JSONResponse:
    return JSONResponse(_state(request).describe())


@_handler
async def register_phone_number(request: Request) -> JSONResponse:
    body = await _body(request, PhoneNumberIn)
    _state(request).registry.register(PhoneNumber(**body.model_dump()))
    return JSONResponse({"registered": body.phone_number_id}, status_code=201)


@_handler
async def revoke_token(request: Request) -> JSONResponse:
    body = await _body(request, RevokeTokenIn)
    _state(request).registry.revoke(body.access_token)
    return JSONResponse({"revoked": True})


@_handler
async def configure_webhook(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, WebhookIn)
    current = state.config.webhook
    url = body.callback_url if "callback_url" in body.model_fields_set else current.callback_url
    token = body.verify_token if "verify_token" in body.model_fields_set else current.verify_token
    changed = url != current.callback_url or token != current.verify_token
    verification = None
    if body.verify and url and changed:
        if not token:
            raise ControlError(400, "verify_token_required", "the subscribe handshake needs a verify_token")
        verification = await verify_callback(state.dispatcher.client, url, token)
        if not verification.ok:
            # Like the App Dashboard: a callback that fails the handshake is not saved.
            raise ControlError(400, "verification_failed", "callback failed the hub.challenge handshake", verification.to_json())
    _apply(current, body, skip=("verify",))
    return JSONResponse({
        "webhook": state.describe()["webhook"],
        "verification": verification.to_json() if verification else None,
    })


@_handler
async def set_limits(request: Request) -> JSONResponse:
    state = _state(request)
    _apply(state.config, await _body(request, LimitsIn))
    return JSONResponse(state.describe())


@_handler
async def set_window(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, WindowIn)
    if body.enforce is not None:
        state.config.enforce_service_window = body.enforce
    if body.seconds is not None:
        state.config.service_window_seconds = body.seconds
    return JSONResponse(state.describe())


@_handler
async def set_outage(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, OutageIn)
    outage = state.config.outage
    outage.mode = body.mode
    if body.status is not None:
        outage.status = body.status
    if body.hang_seconds is not None:
        outage.hang_seconds = body.hang_seconds
    if body.mode != "hang":
        state.release_hangs()
    return JSONResponse(state.describe())


@_handler
async def set_undeliverable(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, UndeliverableIn)
    state.config.undeliverable = {normalize_number(n) for n in body.numbers}
    return JSONResponse(state.describe())


@_handler
async def set_failure_rate(request: Request) -> JSONResponse:
    state = _state(request)
    state.config.transient_failure_rate = (await _body(request, FailureRateIn)).rate
    return JSONResponse(state.describe())


@_handler
async def set_failure_delivery(request: Request) -> JSONResponse:
    state = _state(request)
    state.config.failure_delivery = (await _body(request, FailureDeliveryIn)).mode
    return JSONResponse(state.describe())


@_handler
async def set_status_delays(request: Request) -> JSONResponse:
    state = _state(request)
    _apply(state.config.status_delays, await _body(request, StatusDelaysIn))
    return JSONResponse(state.describe())


def _registered_phone(state: SimState, phone_number_id: str) -> PhoneNumber:
    """The registered number, else the control API's 404: a user can only write to a number that exists."""
    phone = state.registry.phones.get(phone_number_id)
    if phone is None:
        raise ControlError(404, "unknown_phone_number", f"phone_number_id {phone_number_id} is not registered")
    return phone


@_handler
async def inbound(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, InboundIn)
    phone = _registered_phone(state, body.phone_number_id)
    wamid = state.receive_inbound(phone, body.from_, body.body, body.name)
    return JSONResponse({"id": wamid, "wa_id": normalize_number(body.from_)}, status_code=201)


@_handler
async def inbound_message(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, InboundMessageIn)
    phone = _registered_phone(state, body.phone_number_id)
    message = dict(body.message)
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise ControlError(422, "validation_error", "message.type is required")
    if body.media is not None:
        try:
            data = base64.b64decode(body.media.data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ControlError(422, "validation_error", "media.data_base64 is not base64") from None
        item = state.media.add(phone.phone_number_id, data, body.media.mime_type, body.media.filename)
        obj = dict(message.get(kind) or {})
        obj.update(id=item.id, mime_type=item.mime_type, sha256=item.sha256)
        if body.media.filename and kind == "document":
            obj.setdefault("filename", body.media.filename)
        message[kind] = obj
    context = message.get("context")
    if isinstance(context, dict) and "message_id" in context:
        # Meta's inbound context names the quoted message and who sent it (the business, for a reply to us)
        message["context"] = {"from": phone.display_phone_number, "id": context["message_id"]}
    wamid = state.receive_inbound_message(phone, body.from_, body.name, message)
    media_id = message.get(kind, {}).get("id") if body.media is not None else None
    return JSONResponse({"id": wamid, "wa_id": normalize_number(body.from_), "media_id": media_id}, status_code=201)


@_handler
async def register_template(request: Request) -> JSONResponse:
    state = _state(request)
    body = await _body(request, TemplateIn)
    state.templates.register(Template(body.phone_number_id, body.name, body.language, body.body_parameters,
                                      body.category))
    return JSONResponse({"registered": {"name": body.name, "language": body.language}}, status_code=201)


@_handler
async def list_templates(request: Request) -> JSONResponse:
    items = _state(request).templates.list(request.query_params.get("phone_number_id"))
    return JSONResponse({"templates": [t.__dict__ for t in items]})


@_handler
async def sent(request: Request) -> JSONResponse:
    state = _state(request)
    items = state.log.items(
        to=request.query_params.get("to"), phone_number_id=request.query_params.get("phone_number_id")
    )
    return JSONResponse({"messages": [m.to_json() for m in items], "count": len(items)})


@_handler
async def webhook_deliveries(request: Request) -> JSONResponse:
    deliveries = _state(request).dispatcher.history(wamid=request.query_params.get("wamid"))
    return JSONResponse({"deliveries": [d.to_json() for d in deliveries], "count": len(deliveries)})


@_handler
async def advance_clock(request: Request) -> JSONResponse:
    state = _state(request)
    state.clock.advance((await _body(request, ClockIn)).advance_seconds)
    return JSONResponse({"offset_seconds": state.clock.offset, "now": state.clock.now()})


@_handler
async def reset(request: Request) -> JSONResponse:
    _state(request).reset()
    return JSONResponse({"reset": True})


routes = [
    Route("/_control/health", health, methods=["GET"]),
    Route("/_control/config", get_config, methods=["GET"]),
    Route("/_control/phone_numbers", register_phone_number, methods=["POST"]),
    Route("/_control/tokens/revoke", revoke_token, methods=["POST"]),
    Route("/_control/webhook", configure_webhook, methods=["PUT"]),
    Route("/_control/limits", set_limits, methods=["PUT"]),
    Route("/_control/window", set_window, methods=["PUT"]),
    Route("/_control/outage", set_outage, methods=["PUT"]),
    Route("/_control/undeliverable", set_undeliverable, methods=["PUT"]),
    Route("/_control/failure_rate", set_failure_rate, methods=["PUT"]),
    Route("/_control/failure_delivery", set_failure_delivery, methods=["PUT"]),
    Route("/_control/status_delays", set_status_delays, methods=["PUT"]),
    Route("/_control/inbound", inbound, methods=["POST"]),
    Route("/_control/inbound_message", inbound_message, methods=["POST"]),
    Route("/_control/templates", register_template, methods=["POST"]),
    Route("/_control/templates", list_templates, methods=["GET"]),
    Route("/_control/sent", sent, methods=["GET"]),
    Route("/_control/webhooks", webhook_deliveries, methods=["GET"]),
    Route("/_control/clock/advance", advance_clock, methods=["POST"]),
    Route("/_control/reset", reset, methods=["POST"]),
]
