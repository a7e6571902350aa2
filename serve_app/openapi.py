"""OpenAPI details FastAPI cannot infer: the error responses of each route and the auth schemes."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_fields_from_routes, get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from wa_ray.serve_app.all_event_models import ALL_EVENT_MODELS as EVENT_MODELS  # every event type
from wa_ray.serve_app.models import ErrorBody

_DESCRIPTIONS = {
    400: "Malformed request (e.g. body is not JSON)",
    401: "Missing auth, timestamp outside +-300 s, replayed nonce, or expired token",
    403: "Bad signature, unknown or revoked key, or the key may not do this",
    404: "Not found, or not visible to this key (another workspace's ids are 404, never 403)",
    409: "Conflict with the resource's current state",
    413: "Request body over the limit",
    422: "Request does not fit the schema",
    429: "Rate limit of this key exceeded; see Retry-After",
    503: "A dependency (supervisor, capacity) is unavailable; see Retry-After",
}
_ALWAYS = (401, 403, 404, 429)
# Statuses of routes whose routers do not declare them (the message pipeline's); ideally each
# route lists its own with `responses=`, and then these entries are no-ops.
_EXTRA: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/v1/workspaces/{ws}/messages"): {
        409: "No session can take the message, the Idempotency-Key was used for a different message, or "
             "`plan_limit`: the workspace's messages_per_day is reached (details: limit, current, max)"},
    ("get", "/webhooks/meta"): {403: "Not a subscription handshake, or the verify token does not match"},
    ("post", "/webhooks/meta"): {403: "X-Hub-Signature-256 missing or not matching the raw body",
                                 413: "Request body over the limit"},
    ("put", "/v1/workspaces/{ws}/provider"): {409: "The phone_number_id is configured by another workspace"},
}

DESCRIPTION = """\
WhatsApp Web sessions as Ray actors behind Ray Serve.

**Auth (services):** headers `X-Key-Id`, `X-Timestamp` (unix s), `X-Nonce`, `X-Signature` = hex
HMAC-SHA256 of `"{ts}\\n{nonce}\\n{METHOD}\\n{path?query}\\n{sha256hex(body)}"` with the key's secret.
Window +-300 s; a nonce is accepted once in 600 s.

**Auth (browsers):** a short-lived stream token (`POST .../stream-tokens`) as `?token=` on the events
stream; the console exchanges a console token (`POST /v1/console-tokens`) for an HttpOnly cookie.

Errors are always `{"error": {"code", "message", "details"}}`.
"""


_MEDIA_URL = "https://files.example.com/catalog/"
# One request body per kind for POST /v1/workspaces/{ws}/messages, shown as the request's examples.
SEND_EXAMPLES: dict[str, dict[str, Any]] = {
    "text": {"summary": "text (no `type` is text too)",
             "value": {"type": "text", "to": "15551230001", "text": "Your order has shipped", "preview_url": False}},
    "image": {"summary": "image by url, with a caption",
              "value": {"type": "image", "to": "15551230001", "media": {"url": _MEDIA_URL + "boot.jpg"},
                        "caption": "The model you asked about"}},
    "video": {"summary": "video by media_id (from POST /v1/workspaces/{ws}/media)",
              "value": {"type": "video", "to": "15551230001", "media": {"media_id": "med_5f2a9c0e7b1d43a8e6f10c2b"},
                        "caption": "How to fit it"}},
    "audio": {"summary": "audio (no caption)",
              "value": {"type": "audio", "to": "15551230001", "media": {"media_id": "med_0c4e6a8b2d1f3e5a7c9b0d2e"}}},
    "voice": {"summary": "voice note (push-to-talk; audio/ogg opus)",
              "value": {"type": "voice", "to": "15551230001", "media": {"url": _MEDIA_URL + "hello.ogg"}}},
    "document": {"summary": "document with its file name, replying to a received message",
                 "value": {"type": "document", "to": "15551230001",
                           "media": {"media_id": "med_7a1c3e5b9d0f2a4c6e8b1d3f"}, "filename": "invoice-2291.pdf",
                           "caption": "Invoice for order 2291", "reply_to": "3EB0C431D5A9F1E2B7A4"}},
    "sticker": {"summary": "sticker (image/webp)",
                "value": {"type": "sticker", "to": "15551230001", "media": {"url": _MEDIA_URL + "thanks.webp"}}},
    "location": {"summary": "location",
                 "value": {"type": "location", "to": "15551230001", "latitude": -23.5613, "longitude": -46.6565,
                           "name": "Store Paulista", "address": "Av. Paulista, 1578, São Paulo"}},
    "contacts": {"summary": "one contact card",
                 "value": {"type": "contacts", "to": "15551230001", "contacts": [
                     {"name": {"formatted_name": "Bruno Lima", "first_name": "Bruno", "last_name": "Lima"},
                      "phones": [{"phone": "+5511912345678", "type": "CELL", "wa_id": "5511912345678"}],
                      "emails": [{"email": "bruno@example.com", "type": "WORK"}], "org": {"company": "Acme"}}]}},
    "reaction": {"summary": 'reaction on a message (ours msg_... or a received WhatsApp id); "" removes it',
                 "value": {"type": "reaction", "to": "15551230001", "message_id": "msg_5f0c1a2b3c4d5e6f",
                           "emoji": "👍"}},
    "poll": {"summary": "poll (WhatsApp Web only: 422 kind_not_supported when the Cloud API is pinned)",
             "value": {"type": "poll", "to": "15551230001", "name": "Which day suits you?",
                       "options": ["Monday", "Tuesday", "Friday"], "allow_multiple": False}},
    "template": {"summary": "template (Cloud API only), for a conversation outside the 24-hour window",
                 "value": {"type": "template", "to": "15551230001", "name": "order_shipped", "language": "en_US",
                           "components": [{"type": "body", "parameters": [{"type": "text", "text": "2291"}]}]}},
}
_SEND_PATH = "/v1/workspaces/{ws}/messages"


def _add_events(schema: dict[str, Any]) -> None:
    """Every event type's payload under components/schemas (each with examples) and as `webhooks`: what
    SSE and webhook consumers receive, one envelope per event type (`data.kind` names a received message's
    payload)."""
    _, defs = models_json_schema([(m, "serialization") for m in EVENT_MODELS.values()],
                                 ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # Ours win over FastAPI's copy of the same model (a route may return one, e.g. a listed message): its
    # copy of the examples drops the null fields the event examples show on purpose.
    for name, definition in defs.get("$defs", {}).items():
        components[name] = definition
    hooks = schema.setdefault("webhooks", {})
    for event_type, model in EVENT_MODELS.items():
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        examples = {f"example{i}": {"value": v} for i, v in enumerate(model.model_config["json_schema_extra"]["examples"])}  # type: ignore[index]
        hooks[event_type] = {"post": {
            "summary": f"{event_type} (webhook body; the same JSON is an SSE event's data)",
            "operationId": "event_" + event_type.replace(".", "_"),
            "parameters": WEBHOOK_HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref, "examples": examples}}},
            "responses": {"2XX": {"description": "delivered; anything else is retried"}}}}


# Standard Webhooks (actors/webhook_signing.py), with an example each; the first scheme's X-* headers ride along.
WEBHOOK_HEADERS: list[dict[str, Any]] = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "example": "1733500000000-0", "description": "the event id, stable across retries and replays: dedupe on it"},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "example": "1733500000", "description": "unix seconds of this attempt"},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
     "description": 'v1, + base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}" (Standard Webhooks)'},
]


def _add_send_examples(schema: dict[str, Any]) -> None:
    op = schema.get("paths", {}).get(_SEND_PATH, {}).get("post")
    if op is None:
        return
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        content["examples"] = SEND_EXAMPLES


def _models(annotation: Any, found: dict[str, type[BaseModel]]) -> None:
    """Every pydantic model `annotation` names, at any depth, by class name."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if found.setdefault(annotation.__name__, annotation) is not annotation:
            return
        for field in annotation.model_fields.values():
            _models(field.annotation, found)
        return
    for arg in get_args(annotation):
        _models(arg, found)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _restore_examples(schema: dict[str, Any], routes: list[Any]) -> None:
    """Put back the null fields of the models' examples: FastAPI drops every null from the document, and an
    example without a required nullable field (`"number": null` of a `@lid` member) would not fit its own
    schema. Only an example FastAPI passed through changed (same example with its nulls dropped) is restored."""
    models: dict[str, type[BaseModel]] = {}
    for field in get_fields_from_routes(routes):  # what get_openapi documents, routers included
        _models(field.field_info.annotation, models)
    for name, definition in schema.get("components", {}).get("schemas", {}).items():
        extra = getattr(models.get(name.removesuffix("-Input").removesuffix("-Output")), "model_config", {}).get(
            "json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if examples and definition.get("examples") == _without_nulls(examples):
            definition["examples"] = examples


def _list_examples(schema: dict[str, Any]) -> None:
    """A 2xx JSON answer that is a list of one model shows a list of that model's first example."""
    components = schema.get("components", {}).get("schemas", {})
    for item in schema.get("paths", {}).values():
        for op in item.values():
            for status, response in op.get("responses", {}).items():
                media = response.get("content", {}).get("application/json", {})
                ref = media.get("schema", {}).get("items", {}).get("$ref", "")
                if status.startswith("2") and media.get("schema", {}).get("type") == "array" and ref \
                        and "example" not in media and "examples" not in media:
                    examples = components.get(ref.rsplit("/", 1)[-1], {}).get("examples")
                    if examples:
                        media["example"] = [examples[0]]


def errors(*extra: int, notes: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route: the statuses every authenticated route answers plus `extra`;
    `notes` replaces the generic description of a status where the route says more (its error codes)."""
    notes = notes or {}
    return {code: {"model": ErrorBody, "description": notes.get(code, _DESCRIPTIONS[code])}
            for code in sorted({*_ALWAYS, *extra, *notes})}


PLAN_LIMIT_409 = "`plan_limit`: over the workspace's plan limit; details: limit, current, max"


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for name, header in (("KeyId", "X-Key-Id"), ("Timestamp", "X-Timestamp"), ("Nonce", "X-Nonce"),
                             ("Signature", "X-Signature")):
            schemes[name] = {"type": "apiKey", "in": "header", "name": header}
        schemes["ConsoleCookie"] = {"type": "apiKey", "in": "cookie", "name": "wa_console"}
        schemes["StreamToken"] = {"type": "apiKey", "in": "query", "name": "token"}
        hmac_auth = {"KeyId": [], "Timestamp": [], "Nonce": [], "Signature": []}
        error_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                for status, description in _EXTRA.get((method, path), {}).items():
                    op.setdefault("responses", {}).setdefault(str(status), {"description": description, **error_ref})
            if not path.startswith("/v1/"):
                continue
            for method, op in item.items():
                # Routers that do not list them (messages_api and its sub-routers) get the statuses every
                # authenticated route can answer, so clients and schema checks know them too.
                responses = op.setdefault("responses", {})
                for status in (*_ALWAYS, *((400, 413) if method in ("post", "put", "patch") else ())):
                    responses.setdefault(str(status), {"description": _DESCRIPTIONS[status], **error_ref})
                op["security"] = [hmac_auth, {"ConsoleCookie": []}]
                if path.endswith("/events"):
                    op["security"].append({"StreamToken": []})
        _restore_examples(schema, app.routes)
        _list_examples(schema)
        _add_send_examples(schema)
        _add_events(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
