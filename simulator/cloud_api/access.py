"""Who may call a Graph endpoint: the bearer token a request carries and the one ladder of token answers.

Every Graph endpoint of the simulator (messages, media upload, media objects) reads the token the same way
and answers a failed check the same way, so both live here; the order of the ladder (invalid, then expired,
then not allowed) is Graph's and is the same everywhere."""

from __future__ import annotations

from starlette.requests import Request

from wa_ray.simulator.cloud_api import errors
from wa_ray.simulator.cloud_api.registry import Registry, TokenCheck


def access_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer|OAuth ...`, else the `access_token` query parameter."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return request.query_params.get("access_token")


def require_access(registry: Registry, token: str | None, phone_number_id: str, object_id: str | None = None) -> None:
    """Return when `token` may use `phone_number_id`; raise Graph's error otherwise.

    `object_id` is the id the "does not exist" answer names (the media id for a media object), by default
    the number itself; an unknown object and a number the token may not use get that same answer."""
    check = registry.check(token, phone_number_id)
    if check is TokenCheck.INVALID:
        raise errors.invalid_token()
    if check is TokenCheck.EXPIRED:
        raise errors.expired_token()
    if check is TokenCheck.NOT_ALLOWED:
        raise errors.unknown_object(phone_number_id if object_id is None else object_id)
