"""The Meta (Cloud API) webhook receiver: `GET|POST /webhooks/meta`.

GET is the subscription handshake: `hub.mode=subscribe` with a
`hub.verify_token` some workspace configured answers the bare `hub.challenge`
(200, text/plain), anything else 403.

POST carries statuses and inbound messages. The workspace comes from the
payload's `metadata.phone_number_id`, and `X-Hub-Signature-256` must be the
HMAC-SHA256 of the raw body under that workspace's app secret: Meta escapes
non-ASCII and `/` in its JSON, so re-serialised JSON would not match; the
check runs on the bytes as received. An unsigned, badly signed or unknown
payload is 403 and nothing of it is used, whatever its shape: any JSON (a
string `entry`, a list of numbers, a `phone_number_id` that is not a string of
digits) or any `X-Hub-Signature-256` (non-ASCII included) is a 403, never a
500. A number belongs to one workspace (storage/providers.py), so a payload is
only ever handled as that workspace's, under its app secret, and only while that
workspace's config names the number (the number index alone is a hint). Meta retries anything that is not
200 and may deliver twice: handling is idempotent (see actors/inbound.py).

Not HMAC-authenticated like /v1: Meta cannot sign our way; the app secret is
the authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from wa_ray.actors.inbound import InboundRecorder
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx
from wa_ray.serve_app.errors import ApiError

router = APIRouter()

_recorders: dict[int, InboundRecorder] = {}


def _recorder(c: AppContext) -> InboundRecorder:
    rec = _recorders.get(id(c))
    if rec is None:
        rec = _recorders[id(c)] = InboundRecorder(c.redis, c.config)
    return rec


_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")
_NUMBER = re.compile(r"^[0-9]{1,32}$")  # what PUT /provider accepts as a phone_number_id
MAX_NUMBERS = 16  # distinct numbers looked up per payload; Meta batches one business account's number


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """The header must be exactly `sha256=` and 64 lowercase hex digits (anything else, non-ASCII included,
    is a mismatch, not an error); compared in constant time."""
    if not header or not _SIGNATURE.fullmatch(header):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):])


def phone_numbers(payload: Any) -> set[str] | None:
    """The phone_number_ids a payload names, or None when its shape is not Meta's (any JSON at all may
    arrive here unsigned: nothing of it is trusted or indexed blindly)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return None
    numbers: set[str] = set()
    for entry in payload["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            return None
        for change in entry["changes"]:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if not isinstance(number, str) or not _NUMBER.fullmatch(number):
                return None
            numbers.add(number)
            if len(numbers) > MAX_NUMBERS:
                return None
    return numbers


@router.get("/webhooks/meta", include_in_schema=True, response_class=PlainTextResponse)
async def verify(request: Request, c: AppContext = Depends(ctx)) -> PlainTextResponse:
    q = request.query_params
    token, challenge = q.get("hub.verify_token"), q.get("hub.challenge")
    if q.get("hub.mode") != "subscribe" or not token or challenge is None:
        raise ApiError(403, "verification_failed", "not a subscription handshake")
    if await c.selector.store.workspace_of_verify_token(token) is None:
        raise ApiError(403, "verification_failed", "verify token does not match")
    return PlainTextResponse(challenge)


@router.post("/webhooks/meta", response_class=Response)  # 200 with an empty body: Meta reads the status only
async def receive(request: Request, c: AppContext = Depends(ctx)) -> Response:
    body = await request.body()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(403, "bad_signature", "payload is not signed JSON") from None
    numbers = phone_numbers(payload)
    if not numbers:
        raise ApiError(403, "bad_signature", "payload names no phone number configured here")
    store = c.selector.store
    workspaces = {await store.workspace_of_number(n) for n in sorted(numbers)}
    if None in workspaces or len(workspaces) != 1:
        raise ApiError(403, "bad_signature", "payload names no phone number configured here")
    ws = workspaces.pop()
    cfg = await store.get(ws)
    # the number index is a hint (a claim may be in flight or left by a crash): the workspace's own config must
    # name the payload's number, as a workspace configures one
    if cfg.cloud is None or numbers != {cfg.cloud.phone_number_id}:
        raise ApiError(403, "bad_signature", "payload names no phone number configured here")
    # the number's one owner signs for it: a payload another workspace's app secret signed is refused
    if not signature_ok(cfg.cloud.app_secret, body, request.headers.get("x-hub-signature-256")):
        raise ApiError(403, "bad_signature", "X-Hub-Signature-256 does not match the raw body")
    await _recorder(c).cloud_payload(ws, payload)
    return Response(status_code=200)
