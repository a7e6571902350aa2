"""Egress (SSRF) attacks on the running service: a workspace key aims the webhook and the Cloud API at
places the service must never reach, and tries to read answers back through dead letters and reasons.

The test service allows loopback through the operator setting (tests/conftest.py EGRESS_ALLOW, as a
single-box deployment would) and resolves no host name (WA_EGRESS_DNS=false): every destination here is
an IP literal, `localhost` or a name the guard refuses before any lookup, and every connection that is
allowed goes to a loopback listener this test owns. The service's own ports stay refused on loopback,
which is what shows Redis, the API and Ray are out of reach even where loopback is allowed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
import ray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wa_ray.master_keys import master_and_previous
from wa_ray.simulator.cloud_api.testing import serve_in_thread
from wa_ray.storage import keys
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from tests.messages.helpers import publish_events
from tests.messages.helpers import wait_status

SECRET = "whsec-egress-attacks-0123456789"
REFLECTED = "REFLECTED-" + secrets.token_hex(6)  # what an endpoint answers; must never come back to the caller


@dataclass
class Endpoint:
    """A loopback HTTP listener the test owns, answering what the test says, counting what reaches it."""

    url: str = ""
    status: int = 200
    body: bytes | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)


@contextmanager
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()

    async def answer(request: Request) -> Response:
        ep.hits.append(request.url.path)
        await request.body()
        if isinstance(ep.body, dict):
            return JSONResponse(ep.body, status_code=ep.status, headers=ep.headers)
        return Response(ep.body, status_code=ep.status, headers=ep.headers)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    with serve_in_thread(app) as served:
        ep.url = served.url
        yield ep


def own_ports(service) -> dict[str, int]:
    gcs = int(str(ray.get_runtime_context().gcs_address).rpartition(":")[2])
    return {"api": service.settings.http_port, "redis": int(urlsplit(service.config.redis_url).port or 6379),
            "ray_gcs": gcs, "ray_dashboard": 8265, "ray_client": 10001}


def attack_urls(service) -> list[tuple[str, str]]:
    """(url, the reason the guard gives): every listed trick, aimed at the live service's own listeners."""
    p = own_ports(service)
    api, redis, gcs = p["api"], p["redis"], p["ray_gcs"]
    return [
        (f"http://127.0.0.1:{redis}/", "own_listener"),
        (f"http://127.0.0.1:{api}/v1/workspaces", "own_listener"),
        (f"http://127.0.0.1:{gcs}/", "own_listener"),
        ("http://127.0.0.1:8265/api/jobs/", "own_listener"),
        ("http://127.0.0.1:6379/", "own_listener"),
        ("http://127.0.0.1:10001/", "own_listener"),
        (f"http://localhost:{api}/", "own_listener"),
        (f"http://127.1:{redis}/", "own_listener"),
        (f"http://2130706433:{api}/", "own_listener"),
        (f"http://0x7f000001:{redis}/", "own_listener"),
        (f"http://[::ffff:127.0.0.1]:{api}/", "own_listener"),
        (f"http://[::1]:{redis}/", "own_listener"),
        (f"http://127.8.9.10:{api}/", "own_listener"),
        (f"http://0.0.0.0:{api}/", "unspecified"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://2852039166/latest/meta-data/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.10.1/", "link_local"),
        ("http://[fe80::1]/", "link_local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[64:ff9b::7f00:1]/", "translated"),
        ("http://[64:ff9b::a9fe:a9fe]/", "translated"),
        ("file:///etc/passwd", "scheme"),
        (f"gopher://127.0.0.1:{redis}/_FLUSHALL", "scheme"),
        ("ftp://127.0.0.1/", "scheme"),
        (f"http://evil@127.0.0.1:{api}/", "userinfo"),
        ("http://backend.example/hook", "unresolved"),  # this service resolves no tenant-named host
    ]


def assert_denied(response: httpx.Response, url: str, reason: str) -> None:
    assert response.status_code == 422, (url, response.text)
    error = response.json()["error"]
    assert (error["code"], error["details"]["reason"]) == ("egress_denied", reason), (url, error)
    host = urlsplit(url).hostname or url
    assert host not in response.text and url not in response.text  # a 422 never echoes what it rejects


@pytest.fixture
async def tenant(make_key, client_for, unique_ws):
    key = await make_key("workspace", unique_ws, rate_per_s=0)  # dozens of attempts: not a rate-limit test
    return unique_ws, client_for(key)


async def test_webhook_urls_aimed_inside_are_refused_when_written(service, tenant, live_redis) -> None:
    ws, client = tenant
    urls = attack_urls(service)
    for url, reason in urls:
        assert_denied(await client.put(f"/v1/workspaces/{ws}/webhook", json={"url": url, "secret": SECRET}),
                      url, reason)
    assert not await live_redis.exists(keys.webhook(ws))  # nothing stored, nothing to deliver to
    print(f"\n{len(urls)} webhook URLs refused with 422 egress_denied")


async def test_cloud_api_base_url_is_for_admins_only(service, tenant, api) -> None:
    ws, client = tenant
    cloud = {"phone_number_id": str(700_900_000 + secrets.randbelow(99_999)), "access_token": "tok",
             "app_secret": "app-secret"}
    for url, _ in attack_urls(service)[:5] + [("https://graph.example.net", "")]:
        r = await client.put(f"/v1/workspaces/{ws}/provider", json={"cloud": {**cloud, "graph_base_url": url}})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
        assert url not in r.text
    r = await client.put(f"/v1/workspaces/{ws}/provider", json={"cloud": cloud})
    assert r.status_code == 200 and r.json()["cloud"]["graph_base_url"] == "https://graph.facebook.com", r.text
    explicit_default = {**cloud, "graph_base_url": "https://graph.facebook.com/"}
    assert (await client.put(f"/v1/workspaces/{ws}/provider", json={"cloud": explicit_default})).status_code == 200

    # an admin may point it elsewhere, but through the same guard
    for url, reason in attack_urls(service):
        r = await api.put(f"/v1/workspaces/{ws}/provider", json={"cloud": {**cloud, "graph_base_url": url}})
        assert_denied(r, url, reason)
    with endpoint() as ep:
        r = await api.put(f"/v1/workspaces/{ws}/provider", json={"cloud": {**cloud, "graph_base_url": ep.url}})
        assert r.status_code == 200 and r.json()["cloud"]["graph_base_url"] == ep.url, r.text
    await api.put(f"/v1/workspaces/{ws}/provider", json={"priority": "webjs"})


async def dead_letters(client: httpx.AsyncClient, ws: str, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/workspaces/{ws}/webhook/dead-letters")).json()
        if body["total"] >= count or time.monotonic() > deadline:
            return body["items"]
        await asyncio.sleep(0.2)


async def test_an_allowed_loopback_receiver_works_and_its_answers_stay_unread(service, tenant) -> None:
    """The operator allowed loopback: the test's own receiver gets signed deliveries. What it answers (a
    teapot with a body, a 5xx, a redirect to the metadata address) comes back as a class and our code."""
    ws, client = tenant
    with endpoint() as ep:
        r = await client.put(f"/v1/workspaces/{ws}/webhook", json={"url": ep.url + "/hook", "secret": SECRET})
        assert r.status_code == 204, r.text
        assert (await client.put(f"/v1/workspaces/{ws}/webhook/policy",
                                 json={"max_attempts": 1, "base_delay_s": 0.1})).status_code == 200
        [ok] = await publish_events(service, ws, prefix="egress")
        deadline = time.monotonic() + 20
        while not ep.hits and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert ep.hits == ["/hook"], "the allowed loopback receiver got the delivery"

        answers = [(418, {"error": REFLECTED}, {}, "4xx", "permanent: http_4xx"),
                   (500, REFLECTED.encode(), {}, "5xx", "max_attempts: http_5xx"),
                   (302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}, "3xx", "max_attempts: http_3xx")]
        for n, (status, body, headers, klass, reason) in enumerate(answers, start=1):
            ep.status, ep.body, ep.headers = status, body, headers
            hits = len(ep.hits)
            [event_id] = await publish_events(service, ws, prefix="egress")
            letters = await dead_letters(client, ws, n)
            [letter] = [item for item in letters if item["event"]["id"] == event_id]
            assert (letter["status_class"], letter["reason"]) == (klass, reason), letter
            raw = (await client.get(f"/v1/workspaces/{ws}/webhook/dead-letters")).text
            assert REFLECTED not in raw and "169.254" not in raw
            assert set(letter) == {"event", "reason", "attempts", "status_class", "ts"} and status not in (
                letter["attempts"], letter["status_class"])
            assert len(ep.hits) == hits + 1  # one attempt, and the redirect was not followed
    assert ok


async def test_a_webhook_that_turned_into_our_redis_is_refused_at_send_time(service, tenant, live_redis) -> None:
    """A URL that passed when written and no longer does (a name re-pointed, or a record changed in the
    store): the dispatcher checks again before connecting, and dead-letters it in our words."""
    ws, client = tenant
    await client.put(f"/v1/workspaces/{ws}/webhook/policy", json={"max_attempts": 1})
    redis_port = own_ports(service)["redis"]
    store = WebhookConfigStore(live_redis, *master_and_previous(service.config))
    await store.set(ws, WebhookTarget(f"http://127.0.0.1:{redis_port}/", SECRET))  # past the API's check
    [event_id] = await publish_events(service, ws, prefix="egress")
    [letter] = await dead_letters(client, ws, 1)
    assert letter["event"]["id"] == event_id
    assert (letter["status_class"], letter["reason"]) == (
        None, "permanent: egress_denied (one of this service's own listeners)"), letter


async def test_cloud_api_failures_carry_no_answer_text(service, tenant, api) -> None:
    """An admin-configured base URL (here: a loopback endpoint the test owns) answers with text of its
    choosing; the message's reason, its history and the breaker carry Meta's code and our words only."""
    ws, client = tenant
    pnid = str(710_000_000 + secrets.randbelow(9_999_999))
    with endpoint() as ep:
        ep.status = 400
        ep.body = {"error": {"message": REFLECTED, "type": "OAuthException", "code": 131047,
                             "error_data": {"details": REFLECTED}, "fbtrace_id": REFLECTED}}
        cloud = {"phone_number_id": pnid, "access_token": "tok", "app_secret": "app-secret", "graph_base_url": ep.url,
                 "throughput_per_second": None, "pair_burst": None, "breaker_failures": 100}
        r = await api.put(f"/v1/workspaces/{ws}/provider", json={"priority": "meta", "override": "meta", "cloud": cloud})
        assert r.status_code == 200, r.text
        sent = await client.post(f"/v1/workspaces/{ws}/messages", json={"to": "15550001234", "text": "hi"})
        assert sent.status_code == 202, sent.text
        mid = sent.json()["message_id"]
        got = await wait_status(client, ws, mid, {"failed"})
        assert got["reason"] == "cloud_api (#131047): more than 24 hours since the customer's last message", got
        assert got["error_code"] == 131047

        ep.status, ep.body = 503, f"<html>{REFLECTED}</html>".encode()
        sent = await client.post(f"/v1/workspaces/{ws}/messages", json={"to": "15550001235", "text": "hi"})
        mid2 = sent.json()["message_id"]
        got = await wait_status(client, ws, mid2, {"failed"})
        assert got["reason"] == "cloud_api: HTTP 5xx", got
        for path in (f"/v1/workspaces/{ws}/messages/{mid}", f"/v1/workspaces/{ws}/messages/{mid2}",
                     f"/v1/workspaces/{ws}/provider"):
            assert REFLECTED not in (await client.get(path)).text, path
        assert len(ep.hits) >= 2
    await api.put(f"/v1/workspaces/{ws}/provider", json={"priority": "webjs"})


@pytest.mark.parametrize(("policy", "ok"), [
    ({"max_attempts": 21}, False), ({"max_attempts": 1_000_000}, False), ({"base_delay_s": 0.01}, False),
    ({"base_delay_s": 0}, False), ({"max_delay_s": 0.001}, False), ({"max_delay_s": 10**9}, False),
    ({"max_attempts": 20, "base_delay_s": 0.1, "max_delay_s": 60}, True),
])
async def test_retry_policy_is_bounded(tenant, policy: dict, ok: bool) -> None:
    ws, client = tenant
    r = await client.put(f"/v1/workspaces/{ws}/webhook/policy", json=policy)
    assert r.status_code == (200 if ok else 422), r.text
