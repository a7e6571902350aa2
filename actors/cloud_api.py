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
import secrets
from dataclasses import dataclass
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, ClassVar

import httpx
import orjson

from wa_ray.storage.media import MediaTooLarge
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
    470: Failure.REJECTED, 132000: Failure.REJECTED, 132001: Failure.REJECTED, 132005: Failure.REJECTED,
    132007: Failure.REJECTED, 132012: Failure.REJECTED, 132015: Failure.REJECTED, 132016: Failure.REJECTED,
}
RETRYABLE = frozenset({Failure.THROTTLED, Failure.PAIR_LIMITED})
# Our words for the codes a workspace meets most; other codes are described by their class.
_DESCRIBED: dict[int, str] = {
    130429: "throughput limit reached", 131056: "pair rate limit reached for this recipient",
    131047: "more than 24 hours since the customer's last message", 131026: "message undeliverable",
    190: "access token expired or invalid", 100: "invalid parameter", 131051: "unsupported message type",
    131000: "Meta reported an internal error", 2: "Meta service temporarily unavailable",
    131031: "business account locked", 368: "temporarily blocked for policy violations",
    131053: "media upload error", 132000: "template parameter count does not match",
    132001: "template does not exist in this language",
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
class ApiAnswer:
    """What a Graph call answered when it did not succeed: the fields a failure reason is made of.

    Each kind of call is a subclass that adds its success value and names itself in `prefix`, so every
    failure reason reads the same way whatever the call was."""

    prefix: ClassVar[str] = "cloud_api"
    failure: Failure | None = None
    code: int | None = None
    http_status: int | None = None
    message: str = ""

    def reason(self) -> str:
        """`{prefix} (#code): our description`: `message` is always ours (see the module docstring)."""
        code = f" (#{self.code})" if self.code is not None else ""
        return f"{self.prefix}{code}: {self.message}"[:500]


@dataclass(frozen=True)
class SendResult(ApiAnswer):
    wamid: str | None = None

    @property
    def ok(self) -> bool:
        return self.wamid is not None

    @property
    def retryable(self) -> bool:
        return self.failure in RETRYABLE


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

    async def send(self, creds: CloudCredentials, to: str, kind: str, content: dict[str, Any], message_id: str,
                   reply_wa_id: str | None = None, cloud_media_id: str | None = None) -> SendResult:
        """Any kind but poll (see `message_body`); a poll is refused here without a request (131051's meaning)."""
        try:
            body = message_body(to, kind, content, message_id, reply_wa_id, cloud_media_id)
        except UnsupportedKind:
            return SendResult(failure=Failure.REJECTED, code=131051, message=_DESCRIBED[131051])
        return await self._post(creds, body)

    async def upload_media(self, creds: CloudCredentials, data: bytes | AsyncIterable[bytes], mimetype: str,
                           filename: str | None = None, size: int | None = None) -> MediaUpload:
        """`POST /{phone_number_id}/media` (multipart: file, type, messaging_product) -> Meta's media id.

        `data` may be the media store's chunk stream (then `size` is required): the multipart body is
        written around it as it streams, with its length known up front, so the media is never held
        whole here."""
        if isinstance(data, bytes):
            size, data = len(data), _once(data)
        if size is None:
            raise ValueError("a streamed upload needs its size")
        boundary = secrets.token_hex(16)
        head, tail = _multipart_frame(boundary, mimetype, filename)
        timeout = httpx.Timeout(max(creds.options.timeout_s, 30.0), connect=min(3.0, creds.options.timeout_s))
        try:
            response = await self._http.post(
                creds.media_url(), timeout=timeout, content=_framed(head, data, tail),
                headers={"Authorization": f"Bearer {creds.access_token}",
                         "Content-Type": f"multipart/form-data; boundary={boundary}",
                         "Content-Length": str(len(head) + size + len(tail))},
            )
        except EgressDenied as denied:
            return MediaUpload(failure=Failure.PROVIDER_DOWN, message=f"{denied.code} ({denied.verdict.value})")
        except httpx.HTTPError as exc:
            # an upload whose answer is lost is harmless to repeat: an unused media id costs nothing
            return MediaUpload(failure=Failure.PROVIDER_DOWN, message=type(exc).__name__)
        result = parse(response.status_code, response.content)
        payload = _json(response.content)
        if response.status_code == 200 and isinstance(payload, dict) and isinstance(payload.get("id"), str | int):
            return MediaUpload(media_id=str(payload["id"]), http_status=response.status_code)
        return MediaUpload(failure=result.failure, code=result.code, http_status=result.http_status,
                           message=result.message)

    async def media_info(self, creds: CloudCredentials, media_id: str) -> dict[str, Any] | None:
        """`GET /{media-id}`: {url, mime_type, sha256, file_size, id}; None when Meta does not give it."""
        url = f"{creds.graph_base_url.rstrip('/')}/{creds.graph_version}/{media_id}"
        try:
            response = await self._http.get(url, headers={"Authorization": f"Bearer {creds.access_token}"},
                                            timeout=creds.options.timeout_s)
        except (EgressDenied, httpx.HTTPError):
            return None
        payload = _json(response.content)
        if response.status_code != 200 or not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
            return None
        return payload

    async def download(self, creds: CloudCredentials, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The bytes at a media url (sent with the access token, as Meta requires), through the egress guard.

        Raises the media store's `MediaTooLarge` past `max_bytes` and `MediaDownloadFailed` for any other failure; the caller
        streams the chunks into the media store, so the media is never held whole here."""
        try:
            async with self._http.stream("GET", url, headers={"Authorization": f"Bearer {creds.access_token}"},
                                         timeout=max(creds.options.timeout_s, 30.0)) as response:
                if response.status_code != 200:
                    raise MediaDownloadFailed(f"HTTP {status_class(response.status_code)}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLarge(max_bytes)
                seen = 0
                async for chunk in response.aiter_bytes():
                    seen += len(chunk)
                    if seen > max_bytes:
                        raise MediaTooLarge(max_bytes)
                    yield chunk
        except EgressDenied as denied:
            raise MediaDownloadFailed(denied.code) from None
        except httpx.HTTPError as exc:
            raise MediaDownloadFailed(type(exc).__name__) from None

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


class UnsupportedKind(ValueError):
    """A kind the Cloud API has no message type for (a poll)."""


class MediaDownloadFailed(Exception):
    """A media download failed; the text is ours (a status class or an exception's name), never the answer's."""


@dataclass(frozen=True)
class MediaUpload(ApiAnswer):
    prefix: ClassVar[str] = "cloud_api media upload"
    media_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.media_id is not None


_MEDIA_TYPE = {"image": "image", "video": "video", "audio": "audio", "voice": "audio", "document": "document",
               "sticker": "sticker"}


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _framed(head: bytes, chunks: AsyncIterable[bytes], tail: bytes) -> AsyncIterator[bytes]:
    yield head
    async for chunk in chunks:
        yield chunk
    yield tail


def _multipart_frame(boundary: str, mimetype: str, filename: str | None) -> tuple[bytes, bytes]:
    """The multipart/form-data parts before and after the file's bytes (RFC 7578). The file name is the
    sender's: quotes, backslashes and line breaks become `_` so it cannot end its header early."""
    safe_name = "".join("_" if c in '"\\\r\n' or ord(c) < 32 else c for c in (filename or "file"))[:200] or "file"
    safe_type = "".join(c for c in mimetype if c.isprintable() and c not in "\r\n")[:255]
    lines = [
        f"--{boundary}", 'Content-Disposition: form-data; name="messaging_product"', "", "whatsapp",
        f"--{boundary}", 'Content-Disposition: form-data; name="type"', "", safe_type,
        f"--{boundary}", f'Content-Disposition: form-data; name="file"; filename="{safe_name}"',
        f"Content-Type: {safe_type}", "", "",
    ]
    return "\r\n".join(lines).encode(), f"\r\n--{boundary}--\r\n".encode()


def message_body(to: str, kind: str, content: dict[str, Any], message_id: str, reply_wa_id: str | None = None,
                 cloud_media_id: str | None = None) -> dict[str, Any]:
    """Meta's message object for our content dict (wa_ray/message_kinds.py).

    Media goes by `cloud_media_id` (uploaded to this number) or else by the content's `url` as a `link`;
    a voice note is an audio with `voice: true`; a reply carries `context.message_id` (a wamid); a reaction
    names its target's wamid in `content["message_id"]` (the sender resolved it). Raises UnsupportedKind
    for a poll."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                            "biz_opaque_callback_data": message_id}
    if kind == "text":
        body.update(type="text", text={"body": content.get("text", ""),
                                       "preview_url": bool(content.get("preview_url"))})
    elif kind in _MEDIA_TYPE:
        media_type = _MEDIA_TYPE[kind]
        obj: dict[str, Any] = {"id": cloud_media_id} if cloud_media_id else {"link": content.get("url")}
        if kind in ("image", "video", "document") and content.get("caption"):
            obj["caption"] = content["caption"]
        if kind == "document" and content.get("filename"):
            obj["filename"] = content["filename"]
        if kind == "voice":
            obj["voice"] = True
        body.update(type=media_type, **{media_type: obj})
    elif kind == "location":
        loc = {"latitude": content["latitude"], "longitude": content["longitude"]}
        loc.update({k: content[k] for k in ("name", "address") if content.get(k)})
        body.update(type="location", location=loc)
    elif kind == "contacts":
        body.update(type="contacts", contacts=content["contacts"])
    elif kind == "reaction":
        body.update(type="reaction", reaction={"message_id": content["message_id"], "emoji": content.get("emoji", "")})
    elif kind == "template":
        template: dict[str, Any] = {"name": content["name"], "language": {"code": content["language"]}}
        if content.get("components"):
            template["components"] = content["components"]
        body.update(type="template", template=template)
    else:
        raise UnsupportedKind(kind)
    if reply_wa_id and kind != "reaction":
        body["context"] = {"message_id": reply_wa_id}
    return body


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}


def parse(status: int, content: bytes) -> SendResult:
    payload = _json(content)
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
