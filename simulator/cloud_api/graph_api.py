"""`POST /{version}/{phone_number_id}/messages`, the Graph API send endpoint.

Checks run in the order Meta's stack applies them, so the first failing one
decides the answer:

1. outage (`error`: 5xx with Graph error 2; `hang`: no answer, then 504)
2. path version (`vNN.N`, else 2500 "Unknown path components")
3. access token (`Authorization: Bearer ...` or `?access_token=`): 190 / 401
4. phone_number_id exists and the token may use it: 100 subcode 33
5. request shape: 100 "Invalid parameter" with details naming the parameter
6. throughput per number: 130429
7. pair rate (this number -> this user): 131056
8. transient failure (random, `transient_failure_rate`): 131000 / 500
9. customer-service window for non-template messages: 131047
10. undeliverable recipient: 131026

Between 5 and 6 the message itself is checked per type (kinds.py): an unknown media id or a link that
cannot be fetched is 131053, a missing template 132001, a wrong body parameter count 132000, a WhatsApp
message type the Cloud API does not send (a poll) 131051; any other unknown type is 100.

9 and 10 are answered synchronously or, with `failure_delivery: "webhook"`,
accepted and then reported as a `failed` status webhook. Anything that passes
is accepted: a `wamid`, an entry in the sent log, and status webhooks.

The endpoint also handles mark-as-read (`{"status": "read", "message_id": ...}`
for an inbound message), which Meta serves on the same path.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from wa_ray.simulator.cloud_api import errors, kinds
from wa_ray.simulator.cloud_api.access import access_token, require_access
from wa_ray.simulator.cloud_api.errors import GraphError
from wa_ray.simulator.cloud_api.ids import new_fbtrace_id, new_wamid
from wa_ray.simulator.cloud_api.models import (
    KNOWN_TYPES,
    MAX_OPAQUE_CALLBACK_DATA,
    MAX_TEXT_BODY,
    MarkReadRequest,
    SendMessageRequest,
)
from wa_ray.simulator.cloud_api.sent_log import SentMessage
from wa_ray.simulator.cloud_api.state import SimState, normalize_number

VERSION_RE = re.compile(r"^v\d{1,2}\.\d{1,2}$")


def graph_json(body: dict[str, Any], status: int = 200, version: str | None = None) -> Response:
    headers = {"x-fb-trace-id": new_fbtrace_id(), "x-fb-request-id": secrets.token_urlsafe(16)}
    if version:
        headers["facebook-api-version"] = version
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json; charset=UTF-8")


def graph_error(error: GraphError, version: str | None = None) -> Response:
    response = graph_json(error.body(), error.status, version)
    if error.status == 401:
        message = error.body()["error"]["message"]
        response.headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return response


async def messages_endpoint(request: Request) -> Response:
    state: SimState = request.app.state.sim
    version = request.path_params["version"]
    try:
        return await _handle(request, state, version)
    except GraphError as error:
        return graph_error(error, version)


async def _handle(request: Request, state: SimState, version: str) -> Response:
    outage = state.config.outage
    if outage.mode == "error":
        raise errors.outage_error(outage.status)
    if outage.mode == "hang":
        await state.hang(outage.hang_seconds)
        # A held request is never accepted, even if the outage ends meanwhile.
        raise errors.outage_error(504)

    if not VERSION_RE.match(version):
        raise errors.unknown_path(f"/{version}/")
    phone_number_id = request.path_params["phone_number_id"]
    require_access(state.registry, access_token(request), phone_number_id)
    phone = state.registry.phones[phone_number_id]

    raw = await _json_body(request)
    if raw.get("status") == "read" and "message_id" in raw:
        return _mark_read(state, raw, version)
    send = _parse_send(raw)
    wa_id = normalize_number(send.to)
    if not 5 <= len(wa_id) <= 15:
        raise errors.invalid_parameter("Param to must be a valid phone number.")
    checked = await kinds.check(raw, phone_number_id, state.media, state.templates, state.fetcher)

    cfg = state.config
    if not state.throughput.try_acquire(phone_number_id):
        raise GraphError(errors.THROUGHPUT)
    if not state.pairs.try_acquire(phone_number_id, wa_id):
        raise GraphError(errors.PAIR_RATE)
    if cfg.transient_failure_rate > 0 and state.rng.random() < cfg.transient_failure_rate:
        raise GraphError(errors.TRANSIENT)

    is_template = send.type == "template"
    async_failure: errors.ErrorSpec | None = None
    if (
        cfg.enforce_service_window
        and not is_template
        and not state.windows.is_open(phone_number_id, wa_id, cfg.service_window_seconds)
    ):
        async_failure = errors.RE_ENGAGEMENT
    elif wa_id in cfg.undeliverable:
        async_failure = errors.UNDELIVERABLE
    if async_failure is not None and cfg.failure_delivery == "response":
        raise GraphError(async_failure)

    message = SentMessage(
        id=new_wamid(wa_id),
        phone_number_id=phone_number_id,
        to=send.to,
        wa_id=wa_id,
        type=send.type,
        text=send.text.body if send.text is not None else None,
        template=send.template.name if send.template is not None else None,
        biz_opaque_callback_data=send.biz_opaque_callback_data,
        accepted_at=state.clock.now(),
        request=raw,
        kind=checked.kind,
        content=checked.content,
    )
    state.log.add(message)
    if async_failure is not None:
        message.failed_code = async_failure.code
        state.lifecycle.fail(message, phone, async_failure)
    else:
        billing = state.biller.bill(
            phone_number_id,
            wa_id,
            is_template=is_template,
            template_category=cfg.template_category,
            window_seconds=cfg.service_window_seconds,
        )
        state.lifecycle.start(message, phone, billing)

    accepted: dict[str, Any] = {"id": message.id}
    if is_template:
        accepted["message_status"] = "accepted"
    return graph_json(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": send.to, "wa_id": wa_id}],
            "messages": [accepted],
        },
        version=version,
    )


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise errors.invalid_parameter("Request body must be a JSON object.")
    return parsed


def _param_name(loc: tuple[int | str, ...]) -> str:
    # Meta names nested parameters like text['body'].
    head, *rest = [str(part) for part in loc]
    return head + "".join(f"['{part}']" for part in rest)


def _parse_send(raw: dict[str, Any]) -> SendMessageRequest:
    try:
        send = SendMessageRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _param_name(tuple(first["loc"]))
        if first["type"] == "missing":
            raise errors.invalid_parameter(f"The parameter {name} is required.") from None
        raise errors.invalid_parameter(f"Param {name} is not valid: {first['msg']}.") from None
    if send.messaging_product != "whatsapp":
        raise errors.invalid_parameter(
            f'Param messaging_product must be one of {{WHATSAPP}} - got "{send.messaging_product}".'
        )
    if send.recipient_type not in ("individual", "group"):
        raise errors.invalid_parameter("Param recipient_type must be one of {INDIVIDUAL, GROUP}.")
    if send.type in kinds.NOT_ON_CLOUD_API:
        raise GraphError(errors.UNSUPPORTED_TYPE, details=f"Message type {send.type} is not currently supported.")
    if send.type not in KNOWN_TYPES:
        raise errors.invalid_parameter(f"Param type must be one of {{{', '.join(t.upper() for t in KNOWN_TYPES)}}}.")
    if send.type == "text":
        if send.text is None or not send.text.body:
            raise errors.invalid_parameter("The parameter text['body'] is required.")
        if len(send.text.body) > MAX_TEXT_BODY:
            raise errors.invalid_parameter(f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long.")
    elif send.type == "template":
        if send.template is None:
            raise errors.invalid_parameter("The parameter template is required.")
    elif not isinstance(raw.get(send.type), (dict, list)):
        raise errors.invalid_parameter(f"The parameter {send.type} is required.")
    if send.biz_opaque_callback_data is not None and len(send.biz_opaque_callback_data.encode()) > MAX_OPAQUE_CALLBACK_DATA:
        raise errors.invalid_parameter(
            f"Param biz_opaque_callback_data must be at most {MAX_OPAQUE_CALLBACK_DATA} bytes long."
        )
    return send


def _mark_read(state: SimState, raw: dict[str, Any], version: str) -> Response:
    try:
        request = MarkReadRequest.model_validate(raw)
    except ValidationError:
        raise errors.invalid_parameter("Mark-as-read needs messaging_product, status and message_id.") from None
    if request.message_id not in state.inbound_ids:
        raise errors.invalid_parameter(f"Param message_id is not valid: unknown message {request.message_id}.")
    return graph_json({"success": True}, version=version)
