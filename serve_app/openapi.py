"""OpenAPI details FastAPI cannot infer: the error responses of each route and the auth schemes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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
        409: "No session can take the message, or the Idempotency-Key was used for a different message"},
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


def errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in sorted({*_ALWAYS, *extra})}


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
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
