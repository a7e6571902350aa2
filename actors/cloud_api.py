"""The WhatsApp Cloud API adapter: one pooled httpx client, Meta's wire shapes, error classes.

Request: `POST {graph}/{version}/{phone_number_id}/messages` with a bearer
token and `{"messaging_product": "whatsapp", "to", "type": "text", "text": {...}}`;
our message id rides along as `biz_opaque_callback_data`, which Meta echoes in
every status webhook, so a status can be matched to its message even when the
send's own answer was lost.

Answer: `{"messages": [{"id": "wamid..."}]}`, or the Graph error
`{"error": {"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}`.
Meta's advice is to key handling on `error.code`, never on the HTTP status
(throttling comes back as 400, not 429), and that is what `classify` does.

The base URL may be an operator's choice (the simulator, a proxy), so the
client is an egress-guarded one (wa_ray/egress_http.py) and a failure carries
only what is ours to say: Meta's error code (the contract), our description
of it, the status class, our name for a transport failure. Never the
`message` or `details` text of the answer, nor an exception's text: a failure
reason is shown to the workspace and must not read back what answered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from wa_ray.storage.providers import CloudCredentials
from wa_ray.egress import EgressDenied, EgressGuard
from wa_ray.egress_http import GuardedClient, status_class


class Failure(enum.Enum):
    THROTTLED = "throttled"  # back off and retry on the same number (130429, 80007, 4, 131048)
    PAIR_LIMITED = "pair_limited"  # this recipient gets no more for a while (131056)
    PROVIDER_DOWN = "provider_down"  # the API or our access to it is broken: counts towards the breaker
    REJECTED = "rejected"  # this message cannot go out this way (window, recipient, parameters)
    UNKNOWN = "unknown"  # the request may or may not have been accepted (answer lost)


# Meta's error-code table (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
_BY_CODE: dict[int, Failure] = {
    130429: Failure.THROTTLED, 80007: Failure.THROTTLED, 4: Failure.THROTTLED, 131048: Failure.THROTTLED,
    131056: Failure.PAIR_LIMITED,
    1: Failure.PROVIDER_DOWN, 2: Failure.PROVIDER_DOWN, 131000: Failure.PROVIDER_DOWN,
    131016: Failure.PROVIDER_DOWN, 190: Failure.PROVIDER_DOWN, 10: Failure.PROVIDER_DOWN,
    200: Failure.PROVIDER_DOWN, 133010: Failure.PROVIDER_DOWN, 131031: Failure.PROVIDER_DOWN,
    368: Failure.PROVIDER_DOWN, 131042: Failure.PROVIDER_DOWN,
    100: Failure.REJECTED, 131047: Failure.REJECTED, 131026: Failure.REJECTED, 131051: Failure.REJECTED,
    131008: Failure.REJECTED, 131009: Failure.REJECTED, 131021: Failure.REJECTED, 131053: Failure.REJECTED,
    470: Failure.REJECTED,
}
RETRYABLE = frozenset({Failure.THROTTLED, Failure.PAIR_LIMITED})
# Our words for the codes a workspace meets most; other codes are described by their class.
_DESCRIBED: dict[int, str] = {
    130429: "throughput limit reached", 131056: "pair rate limit reached for this recipient",
    131047: "more than 24 hours since the customer's last message", 131026: "message undeliverable",
    190: "access token expired or invalid", 100: "invalid parameter", 131051: "unsupported message type",
    131000: "Meta reported an internal error", 2: "Meta service temporarily unavailable",
    131031: "business account locked", 368: "temporarily blocked for policy violations",
}


def classify(code: int | None, http_status: int | None) -> Failure:
    """Per code first; an unlisted code falls back on the HTTP status (5xx: Meta's side is broken)."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if http_status is not None and (http_status >= 500 or http_status in (401, 403)):
        return Failure.PROVIDER_DOWN
    if http_status == 429:
        return Failure.THROTTLED
    return Failure.REJECTED


@dataclass(frozen=True)
class SendResult:
    wamid: str | None = None
    failure: Failure | None = None
    code: int | None = None
    http_status: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.wamid is not None

    @property
    def retryable(self) -> bool:
        return self.failure in RETRYABLE

    def reason(self) -> str:
        """`cloud_api (#code): our description`: `message` is always ours (see the module docstring)."""
        code = f" (#{self.code})" if self.code is not None else ""
        return f"cloud_api{code}: {self.message}"[:500]


class CloudApiClient:
    """One pooled client for every workspace and number (keep-alive to graph.facebook.com), egress-guarded."""

    def __init__(self, guard: EgressGuard, max_connections: int = 64) -> None:
        self._http = GuardedClient(
            guard, limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": "wa-ray"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def send_text(self, creds: CloudCredentials, to: str, text: str, message_id: str) -> SendResult:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
                "text": {"body": text, "preview_url": False}, "biz_opaque_callback_data": message_id}
        return await self._post(creds, body)

    async def probe(self, creds: CloudCredentials) -> SendResult:
        """Is the API up and our token good? A send with no recipient: Graph checks availability, token and
        number before the body, so a healthy API answers #100 (invalid parameter) and nothing is sent."""
        result = await self._post(creds, {"messaging_product": "whatsapp"})
        if result.code == 100:
            return SendResult(wamid="probe", http_status=result.http_status)
        return result

    async def _post(self, creds: CloudCredentials, body: dict[str, Any]) -> SendResult:
        timeout = httpx.Timeout(creds.options.timeout_s, connect=min(3.0, creds.options.timeout_s))
        try:
            response = await self._http.post(
                creds.messages_url(), content=orjson.dumps(body), timeout=timeout,
                headers={"Authorization": f"Bearer {creds.access_token}", "Content-Type": "application/json"},
            )
        except EgressDenied as denied:
            # the base URL (or what its name resolves to now) is not a destination: nothing was sent, and
            # every send would fail the same way, so it counts towards the breaker like an outage
            return SendResult(failure=Failure.PROVIDER_DOWN, message=f"{denied.code} ({denied.verdict.value})")
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # never reached Meta: certainly not accepted
            return SendResult(failure=Failure.PROVIDER_DOWN, message=type(exc).__name__)
        except httpx.HTTPError as exc:
            # the request went out and no answer came back: Meta may have accepted it
            return SendResult(failure=Failure.UNKNOWN, message=type(exc).__name__)
        return parse(response.status_code, response.content)


def parse(status: int, content: bytes) -> SendResult:
    try:
        payload = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        payload = {}
    if status == 200 and isinstance(payload, dict) and payload.get("messages"):
        return SendResult(wamid=str(payload["messages"][0]["id"]), http_status=status)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return SendResult(failure=classify(None, status), http_status=status, message=f"HTTP {status_class(status)}")
    code = error.get("code")
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() and len(str(code)) <= 9 else None
    failure = classify(code, status)
    described = _DESCRIBED.get(code) if code is not None else None
    return SendResult(failure=failure, code=code, http_status=status,
                      message=described or f"{failure.value}, HTTP {status_class(status)}")
