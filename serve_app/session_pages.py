"""The ingress's way to a session's live page: its node's BrowserHost, found from the registry.

`call_page(c, ws, sid, method, *args)` reads the session's registry record, checks that the session is
`connected` (a page that is not linked cannot answer for the number), finds the BrowserHost of the node
the record names (the replica's PageHosts, serve_app/page_hosts.py: looked up by name once, forgotten
when the actor is gone) and calls `method(ws, sid, *args)` on it. Failures
are the API's errors, never a 500:

* no such session (or another workspace's): 404 `session_not_found`;
* not connected, no node yet, the host gone, or the host has no page for it (`{"error": "no_page" |
  "page_gone"}`): 409 `session_unavailable` with `details: {state}`;
* no answer within `timeout_s`: 504 `session_timeout`.

Any other answer is returned as is for the caller to read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import session_record
from wa_ray.serve_app.errors import ApiError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
_GONE = ("no_page", "page_gone")


def _unavailable(state: str | None) -> ApiError:
    return ApiError(409, "session_unavailable", "the session is not connected to WhatsApp",
                    {"state": state or "unknown"})


async def connected_record(c: AppContext, ws: str, sid: str) -> dict[str, str]:
    """The registry record of a connected session of `ws`; the errors above otherwise."""
    record = await session_record(c, ws, sid, code="session_not_found")
    state = record.get("state")
    if state != "connected" or not record.get("node_id"):
        raise _unavailable(state)
    return record


async def call_page(c: AppContext, ws: str, sid: str, method: str, *args: Any,
                    timeout_s: float = DEFAULT_TIMEOUT_S, record: dict[str, str] | None = None) -> Any:
    """`BrowserHost.<method>(ws, sid, *args)` on the node hosting the session's page. `record`: the session's
    connected_record when the caller read it already."""
    if record is None:
        record = await connected_record(c, ws, sid)
    node = record["node_id"]
    host = c.page_hosts.get(node)
    if host is None:
        raise _unavailable(record.get("state"))
    try:
        result = await asyncio.wait_for(getattr(host, method).remote(ws, sid, *args), timeout_s)
    except TimeoutError:
        raise ApiError(504, "session_timeout", "the session's page did not answer in time") from None
    except ray.exceptions.RayActorError:
        c.page_hosts.forget(node)  # looked up again next time
        raise _unavailable(record.get("state")) from None
    except ray.exceptions.RayTaskError as exc:
        log.warning("page call %s of %s/%s failed: %s", method, ws, sid, type(exc.cause).__name__)
        raise ApiError(502, "page_error", "the session's page could not answer") from None
    if isinstance(result, dict) and result.get("error") in _GONE:
        raise _unavailable(record.get("state"))
    return result
