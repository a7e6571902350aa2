"""Which address a key's IP allow-list judges, asked the same way of either ingress (Serve's proxy, the
session `service`; HAProxy, tests/integration/test_haproxy_ingress.py): calls from other loopback addresses
(127.0.0.0/8 is all loopback on Linux), some with an X-Forwarded-For of their own, signed by a key allowed
only from 127.0.0.2."""

from __future__ import annotations

import ssl

import httpx

from wa_ray.signing import HmacAuth

ALLOWED = "127.0.0.2/32"

# (the caller's source address, the X-Forwarded-For it sends, the status expected)
CASES: list[tuple[str, str | None, int]] = [
    ("127.0.0.2", None, 200),
    ("127.0.0.3", None, 403),
    ("127.0.0.3", "127.0.0.2", 403),  # a caller's own header is not believed
    ("127.0.0.3", "127.0.0.2, 127.0.0.1", 403),
    # a proxy on the node itself (127.0.0.1, uvicorn's FORWARDED_ALLOW_IPS) is believed: under both ingresses
    ("127.0.0.1", "127.0.0.2", 200),
]


async def judged(base_url: str, path: str, key_id: str, secret: str,
                 verify: ssl.SSLContext | bool = True) -> list[tuple[str, str | None, int]]:
    """Each case of CASES with the status the service answered."""
    seen = []
    for source, forwarded, _ in CASES:
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=verify)
        async with httpx.AsyncClient(base_url=base_url, auth=HmacAuth(key_id, secret), transport=transport,
                                     timeout=30) as client:
            headers = {"X-Forwarded-For": forwarded} if forwarded else {}
            seen.append((source, forwarded, (await client.get(path, headers=headers)).status_code))
    return seen
