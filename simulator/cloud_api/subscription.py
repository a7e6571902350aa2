"""The webhook verification handshake Meta performs before it uses a callback URL.

When a callback URL is saved in the App Dashboard ("Verify and save"), Meta
sends:

    GET <callback_url>?hub.mode=subscribe&hub.challenge=<number>&hub.verify_token=<token>

and saves the URL only if the callback answers 200 with the challenge as the
whole body. The callback should answer 403 when `hub.verify_token` is not the
token it was configured with. The simulator runs the same handshake when the
control API sets or changes the callback URL or verify token, and refuses the
configuration when it fails - exactly what the dashboard does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx

from wa_ray.simulator.cloud_api.ids import new_challenge


@dataclass
class VerificationResult:
    ok: bool
    challenge: str
    status_code: int | None
    body: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def verify_callback(
    client: httpx.AsyncClient, callback_url: str, verify_token: str, timeout: float = 10.0
) -> VerificationResult:
    challenge = new_challenge()
    params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    # Merge, not replace: a callback URL may carry its own query string, and
    # Meta appends the hub.* parameters to it.
    try:
        url = httpx.URL(callback_url).copy_merge_params(params)
        response = await client.get(url, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return VerificationResult(False, challenge, None, None, f"{type(exc).__name__}: {exc}")
    body = response.text
    if response.status_code != 200:
        return VerificationResult(False, challenge, response.status_code, body, "callback did not answer 200")
    if body.strip() != challenge:
        return VerificationResult(False, challenge, 200, body, "callback did not echo hub.challenge")
    return VerificationResult(True, challenge, 200, body)
