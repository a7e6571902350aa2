"""Write-time egress check: a URL a caller names is refused before it is stored, not at the first send.

422 `egress_denied`, the message saying which field and which class of destination (loopback address,
private address not allowed by WA_EGRESS_ALLOW, ...), never echoing the URL. The same guard decides again
at send time (wa_ray/egress_http.py), since what a name resolves to may change after it was written.
"""

from __future__ import annotations

from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.errors import ApiError
from wa_ray.egress import EgressDenied


async def allowed_url(c: AppContext, url: str, field: str) -> str:
    try:
        await c.egress.check(url)
    except EgressDenied as denied:
        raise ApiError(422, denied.code, f"{field}: {denied}",
                       {"field": field, "reason": denied.verdict.name.lower()}) from None
    return url
