"""ASGI middleware of the ingress: request ids, body size limits, the audit trail.

Pure ASGI (not BaseHTTPMiddleware) so SSE responses stream untouched and a
client's disconnect reaches the endpoint at once.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wa_ray.message_kinds import UPLOAD_MAX_BYTES
from wa_ray.serve_app.errors import error_body
from wa_ray.storage.audit import AuditEntry, AuditLog, outcome_of, redact_params

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_BODY_LIMIT = 64 * 1024  # a 4096-char message is at most ~16 KiB of UTF-8 plus JSON
BODY_LIMITS: dict[str, int] = {"/webhooks/": 1024 * 1024}  # Meta batches several statuses per POST


# Bodies a handler streams itself (a media upload): counted as they pass, never buffered here. The handler
# catches BodyTooLarge from `receive` and answers 413.
STREAMED_BODIES = re.compile(r"^/v1/workspaces/[^/]+/media$")
STREAMED_BODY_LIMIT = UPLOAD_MAX_BYTES + 64 * 1024  # the file plus its multipart framing


class BodyTooLarge(Exception):
    """Raised by a streamed body's `receive` once more than its limit arrived."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


def _counted(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


# A campaign's recipients: a CSV of up to 100,000 rows, or up to 1,000 inline at creation; a batch of up
# to 1,000 messages (a text of 4,096 characters is about 4 KiB in JSON)
PATH_BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/v1/workspaces/[^/]+/campaigns/[^/]+/recipients$"), 16 * 1024 * 1024),
    (re.compile(r"^/v1/workspaces/[^/]+/messages:batch$"), 4 * 1024 * 1024),
    (re.compile(r"^/v1/workspaces/[^/]+/campaigns$"), 1024 * 1024),
)


def body_limit(path: str) -> int:
    for prefix, limit in BODY_LIMITS.items():
        if path.startswith(prefix):
            return limit
    for pattern, limit in PATH_BODY_LIMITS:
        if pattern.fullmatch(path):
            return limit
    return DEFAULT_BODY_LIMIT


async def _send_error(send: Send, status: int, code: str, message: str, details: dict[str, Any]) -> None:
    body = orjson.dumps(error_body(code, message, details))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body over the limit, whether announced by Content-Length or streamed chunked.

    The body is read here (bounded) and replayed to the app, so no handler ever sees more
    than the limit and a lying Content-Length cannot make a handler read past it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = scope["method"] == "POST" and bool(STREAMED_BODIES.fullmatch(scope["path"]))
        limit = STREAMED_BODY_LIMIT if streamed else body_limit(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, "bad_request", "Content-Length is not a number", {})
                return
            if int(declared) > limit:
                await _send_error(send, 413, "body_too_large", f"request body over {limit} bytes",
                                  {"limit_bytes": limit})
                return
        if streamed:
            await self.app(scope, _counted(receive, limit), send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks = None  # disconnected while sending the body: nothing to serve
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _send_error(send, 413, "body_too_large", f"request body over {limit} bytes",
                                  {"limit_bytes": limit})
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if chunks is None:
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then the real channel: disconnects still arrive (SSE)

        await self.app(scope, replay, send)


class RequestContext:
    """Gives every request an id (X-Request-Id) and writes one audit entry per mutating call.

    The entry is written before the response's last byte is sent, so a caller who saw the
    outcome can find it in the audit stream. `who` comes from the principal the auth
    dependency stored in the request state. A call refused before that (no credential, a
    bad signature) is anonymous: it is recorded, with the key id it claimed, in the capped
    stream of its own (storage/audit.py), so anonymous traffic cannot push real entries out.
    """

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        audited = scope["method"] in MUTATING and (scope["path"].startswith("/v1/")
                                                   or scope["path"].startswith("/console/"))
        status = 500
        written = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, written
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            elif message["type"] == "http.response.body" and not message.get("more_body") and not written \
                    and (audited or "audit_reason" in state):  # a reason: audited whatever the method
                written = True
                await self._record(scope, status, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if (audited or "audit_reason" in state) and not written:  # an exception escaped, or the client left
                written = True
                await self._record(scope, status, request_id)

    async def _record(self, scope: Scope, status: int, request_id: str) -> None:
        state = scope.get("state", {})
        principal = state.get("principal")
        route = scope.get("route")
        params = {k: str(v)[:64] for k, v in (scope.get("path_params") or {}).items()}
        path, params = redact_params(getattr(route, "path", None), scope["path"][:256], params)
        headers = dict(scope.get("headers") or [])
        claimed = headers.get(b"x-key-id", b"").decode("latin-1")[:64] or None
        client = scope.get("client")
        entry = AuditEntry(
            ts=time.time(),
            who=principal.who if principal else "anonymous",
            role=principal.role if principal else None,
            method=scope["method"],
            route=getattr(route, "path", None) or "(unmatched)",
            path=path,
            workspace_id=params.get("ws") or (principal.workspace_id if principal else None),
            status=status,
            outcome=outcome_of(status),
            request_id=request_id,
            client=client[0] if client else None,
            claimed_key=None if principal else claimed,
            params=params or None,
            reason=state.get("audit_reason"),
        )
        try:
            await (self.audit.record(entry) if principal else self.audit.record_anonymous(entry))
        except Exception:  # the call itself succeeded or failed already; losing Redis must not hide that
            log.exception("audit write failed for request %s", request_id)
