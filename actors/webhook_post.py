"""One signed webhook POST and what it came to.

Each POST is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), with our
first scheme's `X-Signature` beside it (actors/webhook_signing.py); the timestamp is inside the signature, so a
captured delivery cannot be replayed later under a fresh one. A tenant's custom headers go first and ours
after, so none of ours can be replaced (storage/webhook_endpoints.py also refuses those names).

The URL is the tenant's: the POST goes through the egress guard (wa_ray/egress_http.py), checked at each
attempt since DNS may have changed since the URL was written; a refused destination is final. Nothing the
endpoint answers is kept or reported beyond its status class: the response body is read only to be dropped,
and the outcome carries the class (`4xx`) and our own code (`http_4xx`, `timeout`, `connect_error`,
`egress_denied (...)`), so a webhook URL cannot be used to read what answers at an address.

The body is drained (up to DRAIN_BYTES within DRAIN_S, then dropped) because an HTTP/1.1 connection goes back
to the pool only once its response was read to the end; one closed unread is closed for good, and every
delivery then paid for a new TCP (in production TLS) connection. A longer or slower answer is cut off there:
its connection is closed, and the delivery counts by its status as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import httpx

from wa_ray.actors.webhook_signing import sign, sign_standard, standard_key
from wa_ray.egress import EgressDenied
from wa_ray.egress_http import GuardedClient, status_class

log = logging.getLogger(__name__)

DRAIN_BYTES, DRAIN_S = 64 * 1024, 1.0  # the most of an answer read (and dropped) to keep its connection
NO_RETRY_4XX_EXCEPT = frozenset({408, 429})


class PostResult(Enum):
    """What one POST to the endpoint came to."""

    OK = "ok"
    RETRY = "retry"  # worth another attempt: 5xx, 408, 429, or no answer
    PERMANENT = "permanent"  # another attempt would get the same: any other 4xx, a refused destination


@dataclass(frozen=True)
class Destination:
    url: str
    secret: str
    headers: Mapping[str, str] = field(default_factory=dict)  # the tenant's own, sent before ours


@dataclass(frozen=True)
class Delivery:
    """What is posted: one event, or a batch (`size` events in a JSON array, `message_id` the batch's id)."""

    message_id: str  # webhook-id: the event's id, or the batch's
    event_type: str  # X-Event-Type: the event's type, or `batch`
    workspace_id: str
    body: bytes
    size: int | None = None  # a batch's number of events (X-Batch-Size); None for one event


def result_of(status: int) -> PostResult:
    if 200 <= status < 300:
        return PostResult.OK
    if 400 <= status < 500 and status not in NO_RETRY_4XX_EXCEPT:
        return PostResult.PERMANENT
    return PostResult.RETRY


def headers_for(dest: Destination, delivery: Delivery, ts: str) -> dict[str, str]:
    ours = {
        "Content-Type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign_standard(standard_key(dest.secret), delivery.message_id, ts, delivery.body),
        "X-Event-Id": delivery.message_id,
        "X-Event-Type": delivery.event_type,
        "X-Workspace-Id": delivery.workspace_id,
        "X-Timestamp": ts,
        "X-Signature": sign(dest.secret, ts, delivery.body),
    }
    if delivery.size is not None:
        ours["X-Batch-Size"] = str(delivery.size)
    lowered = {name.lower() for name in ours}
    return {**{k: v for k, v in dest.headers.items() if k.lower() not in lowered}, **ours}


async def post(client: GuardedClient, dest: Destination, delivery: Delivery) -> tuple[PostResult, str | None, str]:
    """(result, status class, our code): what an attempt may report, never the answer's code or body."""
    headers = headers_for(dest, delivery, str(int(time.time())))
    try:
        async with client.stream("POST", dest.url, content=delivery.body, headers=headers) as response:
            status = response.status_code
            await _drain(response)
    except EgressDenied as denied:
        log.info("webhook %s to workspace %s: %s", delivery.message_id, delivery.workspace_id, denied)
        return PostResult.PERMANENT, None, f"{denied.code} ({denied.verdict.value})"
    except httpx.HTTPError as exc:
        log.info("webhook %s to workspace %s: %s", delivery.message_id, delivery.workspace_id, type(exc).__name__)
        return PostResult.RETRY, None, _transport_code(exc)
    return result_of(status), status_class(status), f"http_{status_class(status)}"


async def _drain(response: httpx.Response) -> None:
    """Read a short answer to its end (and drop it), so its connection is reused; a long or slow one is cut
    off (closed with the response). Never raises: the status alone decides the delivery."""
    read = 0
    try:
        async with asyncio.timeout(DRAIN_S):
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):
        return


def _transport_code(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    return "transport_error"
