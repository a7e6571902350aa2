"""One error shape for every failure: {"error": {"code", "message", "details"}}.

Bad input is never a 500: malformed JSON is 400 `malformed_json`, a body that
does not fit the model is 422 `validation_error`, an unknown route 404. A 422
never echoes what it rejects: its `details.errors` keep the location of a known
field and the rule it broke, never an input value, and an unknown field is
reported at its parent's location without its name. Redis
out of reach (connection refused or dropped, a command timed out, no connection
free in the pool) is 503 `store_unavailable` with Retry-After, never a 500: the
request may be retried; a POST /messages retried with its Idempotency-Key gets
the first answer if its accept did land before the error. An unexpected
exception is still answered in the same shape (500 `internal`, with the request
id so the log line can be found) and never echoes internals.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

STORE_RETRY_AFTER_S = 1


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status, headers=headers)


_LOC_PART = re.compile(r"^[A-Za-z0-9_.\-\[\], ]{1,64}$")
_OWN_MESSAGE = frozenset({"value_error", "assertion_error"})  # validators' own texts may quote the input


def validation_error(e: Any) -> dict[str, Any]:
    """One pydantic error as the API shows it, without anything the caller sent.

    `extra_forbidden` carries the unknown field's name as the last `loc` part: dropped (the error
    points at the object that has it). Any other `loc` part that is not a plain ASCII name is masked.
    A message that quotes the input is replaced by a generic one."""
    kind = str(e.get("type"))
    loc = list(e.get("loc", ()))
    if kind == "extra_forbidden" and loc:
        loc = loc[:-1]
    parts = [p if isinstance(p, int) else (str(p) if _LOC_PART.fullmatch(str(p)) else "*") for p in loc]
    message, given = str(e.get("msg")), e.get("input")
    if kind in _OWN_MESSAGE or (isinstance(given, str) and len(given) >= 3 and given in message):
        message = "value is not valid"
    if kind == "extra_forbidden":
        message = "unknown field"
    return {"loc": [str(p) for p in parts], "msg": message, "type": kind}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [validation_error(e) for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "request body is not valid JSON",
                                  {"errors": [e for e in errors if e["type"] == "json_invalid"]})
        return error_response(422, "validation_error", "request is not valid", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bytes that are not UTF-8 JSON
            return error_response(400, "malformed_json", "request body is not valid JSON")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    last_logged = [0.0]

    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        if time.monotonic() - last_logged[0] > 1.0:  # one line a second, not one per request of an outage
            last_logged[0] = time.monotonic()
            log.warning("redis unavailable in %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(503, "store_unavailable", "the data store is not answering; retry shortly",
                              {"retry_after_s": STORE_RETRY_AFTER_S}, headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    # ConnectionError covers redis-py's MaxConnectionsError (pool exhausted); BusyLoadingError is Redis replaying its AOF
    for exc_class in (RedisConnectionError, RedisTimeoutError, BusyLoadingError):
        app.add_exception_handler(exc_class, _store_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("state", {}).get("request_id", "")
        log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, request_id)
        return error_response(500, "internal", "internal error", {"request_id": request_id})
