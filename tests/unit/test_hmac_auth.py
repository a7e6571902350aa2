"""The server-side HMAC check against real Redis (nonce cache), through a real ASGI request."""

import os
import time

import httpx
import pytest
from fastapi import FastAPI, Request

from wa_ray.serve_app import errors
from wa_ray.serve_app.auth import Authenticator
from wa_ray.crypto import MasterKey
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.signing import signed_headers


@pytest.fixture
async def client(redis):
    master = MasterKey(os.urandom(32))
    auth = Authenticator(redis, master)
    await ApiKeyStore(redis, master).create("workspace", "acme", key_id="k1", secret="s3cret")
    app = FastAPI()
    errors.install(app)

    @app.post("/v1/x")
    async def x(request: Request) -> dict:
        who = await auth.verify(request)
        return {"key": who.key_id, "acme": who.may_access("acme"), "other": who.may_access("other")}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def _h(body: bytes, **kw):
    return signed_headers("k1", "s3cret", "POST", "/v1/x?a=1", body, **kw)


async def test_valid_signature_and_workspace_scope(client) -> None:
    r = await client.post("/v1/x?a=1", content=b"{}", headers=_h(b"{}"))
    assert r.json() == {"key": "k1", "acme": True, "other": False}


@pytest.mark.parametrize("case, status, code", [
    ("tampered", 403, "bad_signature"),
    ("expired", 401, "stale_timestamp"),
    ("future", 401, "stale_timestamp"),
    ("unknown_key", 403, "bad_signature"),
])
async def test_refusals(client, case, status, code) -> None:
    body = b'{"a": 1}'
    headers = _h(body, ts=int(time.time()) + {"expired": -301, "future": 301}.get(case, 0))
    if case == "unknown_key":
        headers["X-Key-Id"] = "nope"
    sent = body + b" " if case == "tampered" else body
    r = await client.post("/v1/x?a=1", content=sent, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


async def test_replayed_nonce_is_refused(client) -> None:
    headers = _h(b"{}")
    assert (await client.post("/v1/x?a=1", content=b"{}", headers=headers)).status_code == 200
    again = await client.post("/v1/x?a=1", content=b"{}", headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "replayed_nonce")
