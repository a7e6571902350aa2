"""Attacks on the webhook endpoints API over real HTTP: another tenant's endpoints are invisible and
untouchable; a read-only key changes nothing; a header that would forge our signature headers, smuggle a
request (CR/LF) or replace HTTP's own is refused without being echoed; secrets and header values never come
back from a read; a URL aimed inside is refused when written; the per-workspace bound holds."""

from __future__ import annotations

import asyncio
import secrets

import pytest

SECRET_HEADER = "Bearer s3cr3t-" + secrets.token_hex(8)


@pytest.fixture
async def tenants(make_key, client_for):
    a, b = f"ws-{secrets.token_hex(4)}", f"ws-{secrets.token_hex(4)}"
    key_a, key_b = await make_key("workspace", a, rate_per_s=0), await make_key("workspace", b, rate_per_s=0)
    reader = await make_key("read", a, rate_per_s=0)
    return a, client_for(key_a), b, client_for(key_b), client_for(reader)


async def _create(client, ws: str, **body):
    return await client.post(f"/v1/workspaces/{ws}/webhooks",
                             json={"url": "http://127.0.0.1:9/in", **body})


async def test_another_tenants_endpoints_are_invisible_and_untouchable(tenants) -> None:
    a, client_a, b, client_b, _reader = tenants
    created = await _create(client_a, a, headers={"Authorization": SECRET_HEADER})
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    # through A's workspace path: B's key does not see that workspace at all
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/dead-letters"),
                           ("POST", "/dead-letters/replay")):
        body = {"description": "mine now"} if method == "PATCH" else None
        r = await client_b.request(method, f"/v1/workspaces/{a}/webhooks/{eid}{suffix}", json=body)
        assert r.status_code == 404, (method, suffix, r.text)
    assert (await client_b.get(f"/v1/workspaces/{a}/webhooks")).status_code == 404
    # through B's own path with A's endpoint id: not found, as for an id that never existed
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/dead-letters"),
                           ("POST", "/dead-letters/replay")):
        body = {"url": "http://127.0.0.2:9/"} if method == "PATCH" else None
        r = await client_b.request(method, f"/v1/workspaces/{b}/webhooks/{eid}{suffix}", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), (method, suffix)
    assert (await client_b.get(f"/v1/workspaces/{b}/webhooks")).json() == {"items": []}
    still = (await client_a.get(f"/v1/workspaces/{a}/webhooks/{eid}")).json()
    assert still["url"] == "http://127.0.0.1:9/in" and still["description"] == ""
    for bad_id in ("we_0123", "we_" + "0" * 16 + "x", "WE_0123456789abcdef", "we_%2F..%2F"):
        assert (await client_a.get(f"/v1/workspaces/{a}/webhooks/{bad_id}")).status_code == 404


async def test_a_read_only_key_changes_nothing(tenants) -> None:
    a, client_a, _b, _client_b, reader = tenants
    eid = (await _create(client_a, a)).json()["id"]
    assert (await _create(reader, a)).status_code == 403
    assert (await reader.patch(f"/v1/workspaces/{a}/webhooks/{eid}", json={"events": ["*"]})).status_code == 403
    assert (await reader.delete(f"/v1/workspaces/{a}/webhooks/{eid}")).status_code == 403
    assert (await reader.post(f"/v1/workspaces/{a}/webhooks/{eid}/dead-letters/replay")).status_code == 403
    assert (await reader.get(f"/v1/workspaces/{a}/webhooks/{eid}")).status_code == 200  # reading is its right


async def test_forged_smuggled_and_reserved_headers_are_refused_unechoed(tenants) -> None:
    a, client, *_ = tenants
    value = "v-" + secrets.token_hex(6)
    refused = [
        {"webhook-signature": value}, {"Webhook-Id": value}, {"X-Signature": value}, {"x-event-type": value},
        {"X-Timestamp": value}, {"Host": value}, {"Content-Length": "1"}, {"Transfer-Encoding": "chunked"},
        {"X-Ok": value + "\r\nX-Injected: 1"}, {"X-Ok": value + "\n"}, {"Bad Name": value}, {"X-Ok": "é" + value},
        {"X-Dup": value, "x-dup": value},
        {f"X-H{i}": value for i in range(11)},  # more than ten
    ]
    for headers in refused:
        r = await _create(client, a, headers=headers)
        assert r.status_code == 422, (headers, r.text)
        assert value not in r.text, "a 422 never echoes what it rejects"
    assert (await client.get(f"/v1/workspaces/{a}/webhooks")).json() == {"items": []}, "nothing was stored"


async def test_secrets_and_header_values_never_come_back(tenants) -> None:
    a, client, *_ = tenants
    given = "whsec_" + __import__("base64").b64encode(secrets.token_bytes(32)).decode()
    created = await _create(client, a, secret=given, headers={"Authorization": SECRET_HEADER})
    assert created.json()["secret"] is None, "a secret the caller chose is not sent back"
    eid = created.json()["id"]
    patched = await client.patch(f"/v1/workspaces/{a}/webhooks/{eid}", json={"secret": given[:-4] + "AAA="})
    reads = [created, patched, await client.get(f"/v1/workspaces/{a}/webhooks"),
             await client.get(f"/v1/workspaces/{a}/webhooks/{eid}")]
    for r in reads:
        assert given[6:20] not in r.text and SECRET_HEADER not in r.text, r.text
    bad = await client.patch(f"/v1/workspaces/{a}/webhooks/{eid}", json={"secret": "whsec_" + "A" * 8})
    assert bad.status_code == 422 and "AAAAAAAA" not in bad.text


async def test_urls_aimed_inside_and_unknown_event_types_are_refused_when_written(tenants) -> None:
    a, client, *_ = tenants
    for url in ("http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "ftp://hooks.example.com/"):
        r = await _create(client, a, url=url)
        assert r.status_code == 422 and url not in r.text, (url, r.text)
    eid = (await _create(client, a)).json()["id"]
    r = await client.patch(f"/v1/workspaces/{a}/webhooks/{eid}", json={"url": "http://169.254.169.254/"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "egress_denied")
    for events in (["message.nope"], ["nothing.*"], ["message.received", "*x"], []):
        r = await _create(client, a, events=events)
        assert r.status_code == 422, (events, r.text)
    for batch in ({"max_events": 1, "max_wait_ms": 100}, {"max_events": 101, "max_wait_ms": 100},
                  {"max_events": 5, "max_wait_ms": 10**6}):
        assert (await _create(client, a, batch=batch)).status_code == 422, batch


async def test_at_most_ten_endpoints_per_workspace_even_when_created_at_once(tenants) -> None:
    a, client, *_ = tenants
    answers = await asyncio.gather(*(_create(client, a) for _ in range(14)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 10 + [409] * 4, codes
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"quota_exceeded"}
    assert len((await client.get(f"/v1/workspaces/{a}/webhooks")).json()["items"]) == 10
