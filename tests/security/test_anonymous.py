"""What a caller with no credential at all can reach: never a 500, no audit flush, no open redirect,
no metrics or internals.

/webhooks/meta takes any bytes from anyone: every odd JSON shape and odd signature header is a 403
(or 400/413), never a 500. Anonymous writes to /v1 cannot push real audit entries out. The
trailing-slash redirect cannot be aimed at a host of the caller's choice. /metrics and the details of
/readyz need an operator credential; /healthz stays open.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import httpx
import orjson
import pytest

from wa_ray.storage import keys
from tests.conftest import OPERATOR
from wa_ray.signing import signed_headers

pytestmark = pytest.mark.asyncio

SECRET = "anon-test-app-secret-" + secrets.token_hex(6)


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _pnid() -> str:
    return "8" + str(secrets.randbelow(10**11)).zfill(11)


def _change(pnid: Any, **value: Any) -> bytes:
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": pnid}, **value}}]}]})


def _sig(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


ODD_BODIES: list[bytes] = [
    b"", b"null", b"1", b'"x"', b"[]", b"[1, 2]", b"{}", b"true", b"NaN", b"1e999999",
    b'{"entry": null}', b'{"entry": "abc"}', b'{"entry": 5}', b'{"entry": [1, 2, 3]}', b'{"entry": [[]]}',
    b'{"entry": [null]}', b'{"entry": {"changes": []}}', b'{"entry": [{"changes": "x"}]}',
    b'{"entry": [{"changes": [1]}]}', b'{"entry": [{"changes": [null]}]}',
    b'{"entry": [{"changes": [{"value": []}]}]}',
    b'{"entry": [{"changes": [{"value": {"metadata": []}}]}]}',
    b'{"entry": [{"changes": [{"value": {"metadata": 7}}]}]}',
    _change([1, 2]), _change({"a": 1}), _change(12345), _change(1.5), _change(True), _change(None), _change(""),
    _change("\u0661\u0662\u0663"), _change("1" * 5000), _change("../../x"),
    b'{"entry": [{"changes": [{"value": {"metadata": {"phone_number_id": 123456789012345678901234567890}}}]}]}',
    b"[" * 5000 + b"]" * 5000,  # deeper than any parser should recurse
    b'{"entry": [' + b",".join([b'{"changes": [{"value": {"metadata": {"phone_number_id": "1"}}}]}'] * 5000) + b"]}",
    orjson.dumps({"entry": [{"changes": [{"value": {"metadata": {"phone_number_id": str(n)}}}]} for n in range(40)]}),
    "\u00e9\u00e8".encode("latin-1"), b"\xff\xfe\x00",
]
ODD_SIGNATURES: list[str | bytes | None] = [
    None, "", "sha256=", "sha256=" + "0" * 64, "sha256=" + "Z" * 64, "sha1=abc", "sha256=" + "0" * 6400,
    ("sha256=" + "\u00e9" * 64).encode("latin-1"), ("sha256=" + "\u0661" * 64).encode("utf-8"), b"\xff" * 70,
]


async def test_odd_meta_webhook_bodies_and_signatures_are_refused_never_500(raw) -> None:
    seen = 0
    for body in ODD_BODIES:
        for sig in (None, "sha256=" + "0" * 64, ("sha256=" + "\u00e9" * 64).encode("latin-1")):
            headers = {"content-type": "application/json"} | ({"X-Hub-Signature-256": sig} if sig else {})
            r = await raw.post("/webhooks/meta", content=body, headers=headers)  # type: ignore[arg-type]
            assert r.status_code in (400, 403, 413), (body[:60], sig, r.status_code, r.text[:200])
            assert _error(r)[0] == r.status_code
            seen += 1
    assert seen == len(ODD_BODIES) * 3


async def test_odd_signatures_on_a_configured_number_are_403(api, raw, unique_ws) -> None:
    pnid = _pnid()
    r = await api.put(f"/v1/workspaces/{unique_ws}/provider",
                      json={"cloud": {"phone_number_id": pnid, "access_token": "t", "app_secret": SECRET}})
    assert r.status_code == 200, r.text
    body = _change(pnid, statuses=[{"id": "wamid.x", "status": "read"}])
    for sig in ODD_SIGNATURES:
        headers = {"X-Hub-Signature-256": sig} if sig is not None else {}
        r = await raw.post("/webhooks/meta", content=body, headers=headers)  # type: ignore[arg-type]
        assert _error(r) == (403, "bad_signature"), (sig, r.text)
    assert (await raw.post("/webhooks/meta", content=body, headers={"X-Hub-Signature-256": _sig(body)})
            ).status_code == 200  # the control: the right signature is taken

    # signed by the number's own secret, but nothing inside is the documented shape: taken, nothing breaks
    inner: list[dict[str, Any]] = [
        {"messages": "x"}, {"messages": [1, None, "a", []]}, {"messages": [{"id": {"a": 1}}]},
        {"messages": [{"id": "wamid.odd-" + secrets.token_hex(3), "from": [1], "timestamp": "\u0661\u0662",
                       "text": "not an object", "type": ["x"]}]},
        {"statuses": 5}, {"statuses": [1, None]}, {"statuses": [{"id": ["x"], "status": {"a": 1}}]},
        {"statuses": [{"id": "wamid.none", "status": "failed", "errors": "x"}]},
        {"statuses": [{"id": "wamid.none", "status": "failed", "errors": [1, {"code": [1]}]}]},
        {"statuses": [{"id": "wamid.none", "status": "read", "biz_opaque_callback_data": {"a": 1}}]},
        {"contacts": "x", "messages": [{"id": "wamid.c-" + secrets.token_hex(3), "from": "1"}]},
        {"contacts": [1, {"wa_id": ["x"], "profile": "x"}, {"wa_id": "1", "profile": {"name": 5}}]},
        {"metadata": {"phone_number_id": pnid, "display_phone_number": {"x": 1}}},
    ]
    for value in inner:
        value = {"metadata": {"phone_number_id": pnid}} | value
        body = orjson.dumps({"entry": [{"changes": [{"value": value}]}]})
        r = await raw.post("/webhooks/meta", content=body, headers={"X-Hub-Signature-256": _sig(body)})
        assert r.status_code == 200, (value, r.status_code, r.text[:200])


async def test_anonymous_writes_never_push_real_audit_entries_out(raw, make_key, client_for, live_redis,
                                                                  unique_ws) -> None:
    key = await make_key("workspace", unique_ws)
    writer = client_for(key)
    assert (await writer.put(f"/v1/workspaces/{unique_ws}/pacing", json={"typing": False})).status_code == 200
    newest = await live_redis.xrevrange(keys.audit(), count=1)
    assert newest and orjson.loads(newest[0][1]["e"])["who"] == f"key:{key.key_id}"
    real_id = newest[0][0]
    anonymous_before = await live_redis.xlen(keys.audit_anonymous())

    base = f"/v1/workspaces/{unique_ws}"
    targets = [("POST", f"{base}/sessions", b'{"session_id": "a"}'), ("DELETE", f"{base}/sessions/a", b""),
               ("POST", f"{base}/sessions/a/restart", b""), ("POST", f"{base}/messages", b'{"to": "1", "text": "x"}'),
               ("PUT", f"{base}/webhook", b"{}"), ("PUT", f"{base}/provider", b"{}"), ("PUT", f"{base}/pacing", b"{}"),
               ("POST", f"{base}/stream-tokens", b""), ("POST", "/v1/console-tokens", b"{}"),
               ("PUT", f"{base}/webhook/policy", b"{}")]

    def attempt(i: int, path: str, method: str, body: bytes) -> dict[str, Any]:
        kind = i % 5
        if kind == 0:
            return {}
        if kind == 1:
            return {"X-Key-Id": f"forged-{i}"}
        if kind == 2:
            return signed_headers("no-such-key", "x" * 32, method, path, body)
        if kind == 3:
            return signed_headers(key.key_id, "not-the-secret", method, path, body)
        return {"Cookie": "wa_console=garbage", "X-WA-Console": "1"}

    statuses = set()
    for i in range(200):
        method, path, body = targets[i % len(targets)]
        r = await raw.request(method, path, content=body, headers={"content-type": "application/json",
                                                                    **attempt(i, path, method, body)})
        statuses.add(r.status_code)
    assert statuses <= {401, 403}, statuses

    assert await live_redis.xrange(keys.audit(), min=f"({real_id}", max="+") == []  # nothing new in the real trail
    assert [i for i, _ in await live_redis.xrange(keys.audit(), min=real_id, max=real_id)] == [real_id]
    assert await live_redis.xlen(keys.audit_anonymous()) >= min(anonymous_before + 200, 9_000)  # kept apart


async def test_trailing_slash_never_redirects_to_the_callers_host(raw, unique_ws) -> None:
    paths = ["/healthz/", "/readyz/", "/metrics/", "/openapi.json/", "/docs/", "/console/", "/webhooks/meta/",
             "/v1/workspaces/", f"/v1/workspaces/{unique_ws}/sessions/", "/v1/audit/"]
    for path in paths:
        for method in ("GET", "POST"):
            r = await raw.request(method, path, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
            assert not 300 <= r.status_code < 400, (method, path, r.status_code, r.headers.get("location"))
            assert "evil" not in r.headers.get("location", ""), (method, path)
            assert r.status_code in (401, 404, 405), (method, path, r.status_code)


async def test_metrics_and_readiness_details_need_an_operator(raw, api, make_key, client_for, unique_ws) -> None:
    assert (await raw.get("/healthz")).json() == {"status": "ok"}  # open

    r = await raw.get("/metrics")
    assert _error(r) == (401, "unauthenticated") and r.headers["www-authenticate"] == "Bearer"
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + "x" * 20},
                    {"Authorization": b"Bearer \xe9\xe8"}, {"Authorization": ""}):
        r = await raw.get("/metrics", headers=headers)  # type: ignore[arg-type]
        assert _error(r)[0] in (401, 403), (headers, r.text)
        assert "wa_" not in r.text
        r = await raw.get("/readyz", headers=headers)  # type: ignore[arg-type]
        assert _error(r)[0] in (401, 403), (headers, r.text)
    worker = client_for(await make_key("workspace", unique_ws))
    assert _error(await worker.get("/metrics")) == (403, "forbidden")  # a tenant is no operator
    assert _error(await worker.get("/readyz")) == (403, "forbidden")
    headers = signed_headers("no-such-key", "x" * 32, "GET", "/metrics", b"")
    assert _error(await raw.get("/metrics", headers=headers)) == (403, "bad_signature")

    for scrape in (await raw.get("/metrics", headers=OPERATOR), await api.get("/metrics")):
        assert scrape.status_code == 200 and "# TYPE wa_sessions gauge" in scrape.text

    anonymous = await raw.get("/readyz")
    assert anonymous.status_code in (200, 503) and anonymous.json() == {"ready": anonymous.status_code == 200}
    for detailed in (await raw.get("/readyz", headers=OPERATOR), await api.get("/readyz")):
        body = detailed.json()
        assert detailed.status_code == 200 and body["ready"] is True
        assert set(body["checks"]) == {"redis", "ray", "supervisor", "browser_host"}
