"""Graph API errors in Meta's wire shape.

Synchronous errors (HTTP response of `POST /{version}/{phone_number_id}/messages`):

    {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
               "code": 130429,
               "error_data": {"messaging_product": "whatsapp", "details": "..."},
               "fbtrace_id": "..."}}

`error_subcode` is deprecated for WhatsApp errors since v16 and omitted, except
on the Graph-level errors that still carry it (unknown object: 100/33,
expired token: 190/463). Graph-level errors (190, 100/33, 2500) carry no
`error_data`, as on the real API: clients must not assume it is present.

Asynchronous errors (in a `failed` status webhook) use the other shape:

    {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
     "error_data": {"details": "..."}, "href": "..."}

HTTP statuses follow Meta's error-code table: throttling and policy errors are
400 (not 429!), unknown errors 500, service outages 503. Build error handling
on `error.code`, as Meta recommends, never on the HTTP status or the title.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wa_ray.simulator.cloud_api.ids import new_fbtrace_id

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


@dataclass(frozen=True)
class ErrorSpec:
    code: int
    http_status: int
    title: str
    details: str
    type: str = "OAuthException"


INVALID_PARAMETER = ErrorSpec(100, 400, "Invalid parameter", "Invalid parameter")
THROUGHPUT = ErrorSpec(
    130429, 400, "Rate limit hit", "Cloud API message throughput has been reached."
)
PAIR_RATE = ErrorSpec(
    131056, 400, "(Business Account, Consumer Account) pair rate limit hit",
    "Message failed to send because there were too many messages sent from this "
    "phone number to the same phone number in a short period of time.",
)
RE_ENGAGEMENT = ErrorSpec(
    131047, 400, "Re-engagement message",
    "Message failed to send because more than 24 hours have passed since the "
    "customer last replied to this number.",
)
UNDELIVERABLE = ErrorSpec(
    131026, 400, "Message undeliverable",
    "Message Undeliverable.",
)
TRANSIENT = ErrorSpec(
    131000, 500, "Something went wrong",
    "Message failed to send due to an unknown error.",
)
MEDIA_UPLOAD = ErrorSpec(
    131053, 400, "Media upload error",
    "Unable to upload the media used in the message.",
)
UNSUPPORTED_TYPE = ErrorSpec(
    131051, 400, "Unsupported message type",
    "Message type is not currently supported.",
)
TEMPLATE_PARAMS = ErrorSpec(
    132000, 400, "Number of parameters does not match the expected number of params",
    "The number of variable parameter values included in the request did not match the number of "
    "variable parameters defined in the template.",
)
TEMPLATE_MISSING = ErrorSpec(
    132001, 404, "Template name does not exist in the translation",
    "The template does not exist in the specified language or the template has not been approved.",
)
SERVICE_UNAVAILABLE = ErrorSpec(
    2, 503, "Service temporarily unavailable",
    "Temporary due to downtime or due to being overloaded.",
)


@dataclass
class GraphError(Exception):
    """A synchronous Graph API error, raised by handlers and rendered once."""

    spec: ErrorSpec
    details: str | None = None
    http_status: int | None = None
    message: str | None = None
    subcode: int | None = None
    with_error_data: bool = True

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message or f"(#{self.spec.code}) {self.spec.title}",
            "type": self.spec.type,
            "code": self.spec.code,
        }
        if self.with_error_data:
            error["error_data"] = {
                "messaging_product": "whatsapp",
                "details": self.details or self.spec.details,
            }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = new_fbtrace_id()
        return {"error": error}

    @property
    def status(self) -> int:
        return self.http_status or self.spec.http_status


def invalid_parameter(details: str) -> GraphError:
    return GraphError(INVALID_PARAMETER, details=details)


def invalid_token() -> GraphError:
    return GraphError(
        ErrorSpec(190, 401, "Invalid OAuth access token", ""),
        message="Invalid OAuth access token - Cannot parse access token",
        with_error_data=False,
    )


def expired_token() -> GraphError:
    return GraphError(
        ErrorSpec(190, 401, "Access token has expired", ""),
        message="Error validating access token: Session has expired.",
        subcode=463,
        with_error_data=False,
    )


def unknown_object(object_id: str) -> GraphError:
    # What Graph answers for a phone_number_id that does not exist *or* that the
    # token may not use: the two are deliberately indistinguishable.
    return GraphError(
        ErrorSpec(100, 400, "", "", type="GraphMethodException"),
        message=(
            f"Unsupported post request. Object with ID '{object_id}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this "
            "operation. Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api"
        ),
        subcode=33,
        with_error_data=False,
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(
        ErrorSpec(2500, 400, "", ""),
        message=f"Unknown path components: {path}",
        with_error_data=False,
    )


def outage_error(status: int) -> GraphError:
    return GraphError(SERVICE_UNAVAILABLE, http_status=status)


def webhook_error(spec: ErrorSpec, details: str | None = None) -> dict[str, Any]:
    """The error object inside `statuses[].errors[]` of a `failed` webhook."""
    return {
        "code": spec.code,
        "title": spec.title,
        "message": spec.title,
        "error_data": {"details": details or spec.details},
        "href": ERROR_CODES_HREF,
    }
