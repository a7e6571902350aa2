"""The Cloud API simulator over real HTTP on loopback.

One simulator and one webhook receiver serve the whole module (each test
resets both); the receiver is a small Starlette app that records the raw bytes
of every webhook and checks `X-Hub-Signature-256` over exactly those bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from wa_ray.simulator.cloud_api.config import CloudSimConfig, PhoneNumber, StatusDelays, WebhookConfig
from wa_ray.simulator.cloud_api.signing import verify_signature_256
from wa_ray.simulator.cloud_api.testing import (
    CloudControlError,
    RunningCloudSimulator,
    running_cloud_simulator,
    serve_in_thread,
)

APP_SECRET = "app-secret-\u00e9"  # non-ASCII on purpose: keys are UTF-8 bytes
VERIFY_TOKEN = "verify-me"
PNID, TOKEN = "1001", "token-1001"
OTHER_PNID, OTHER_TOKEN = "2002", "token-2002"
USER = "15551234567"


# ---- webhook receiver ----------------------------------------------------------


@dataclass
class Captured:
    raw: bytes
    headers: dict[str, str]
    signature_ok: bool
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def value(self) -> dict[str, Any]:
        return self.json["entry"][0]["changes"][0]["value"]


@dataclass
class Receiver:
    """Plays our webhook endpoint: handshake on GET, capture on POST."""

    url: str = ""
    verify_token: str = VERIFY_TOKEN
    posts: list[Captured] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    # Status codes to answer to the next POSTs, then 200.
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.posts.clear()
            self.handshakes.clear()
            self.script.clear()
            self.verify_token = VERIFY_TOKEN

    def statuses(self) -> list[tuple[str, str]]:
        with self.lock:
            return [
                (s["id"], s["status"]) for p in self.posts if p.answered == 200 for s in p.value.get("statuses", [])
            ]

    def app(self) -> Starlette:
        async def get(request: Request) -> Response:
            params = dict(request.query_params)
            with self.lock:
                self.handshakes.append(params)
            if params.get("hub.mode") == "subscribe" and params.get("hub.verify_token") == self.verify_token:
                return PlainTextResponse(params.get("hub.challenge", ""))
            return PlainTextResponse("forbidden", status_code=403)

        async def post(request: Request) -> Response:
            raw = await request.body()
            ok = verify_signature_256(raw, request.headers.get("x-hub-signature-256"), APP_SECRET)
            with self.lock:
                answer = self.script.pop(0) if self.script else 200
                self.posts.append(Captured(raw, dict(request.headers), ok, answer))
            return Response(status_code=answer)

        return Starlette(routes=[Route("/hook", get, methods=["GET"]), Route("/hook", post, methods=["POST"])])


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


# ---- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with serve_in_thread(rec.app()) as served:
        rec.url = served.url + "/hook"
        yield rec


@pytest.fixture(scope="module")
def sim_module(receiver: Receiver) -> Iterator[RunningCloudSimulator]:
    config = CloudSimConfig(
        phone_numbers=[
            PhoneNumber(PNID, TOKEN, display_phone_number="15550001001", waba_id="900000000000001"),
            PhoneNumber(OTHER_PNID, OTHER_TOKEN, display_phone_number="15550002002"),
        ],
        status_delays=StatusDelays(sent=0.01, delivered=0.03, read=0.06),
        webhook=WebhookConfig(
            callback_url=receiver.url,
            app_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
            max_attempts=4,
            retry_base_delay=0.05,
            retry_max_delay=0.5,
            timeout=2.0,
        ),
        seed=7,
    )
    with running_cloud_simulator(config) as sim:
        yield sim


@pytest.fixture
def sim(sim_module: RunningCloudSimulator, receiver: Receiver) -> RunningCloudSimulator:
    sim_module.control.reset()
    # reset cancels pending webhooks, but a POST already on the wire when it
    # did may still land: let it, then forget it.
    time.sleep(0.05)
    receiver.clear()
    return sim_module


def send(sim: RunningCloudSimulator, body: dict[str, Any], *, token: str = TOKEN, pnid: str = PNID,
         version: str = "v21.0", timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        sim.graph_url(pnid, version), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def text(to: str = USER, body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
            "text": {"body": body}, **extra}


def template(to: str = USER, name: str = "order_update") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": "en_US"}}}


def assert_graph_error(response: httpx.Response, http_status: int, code: int, *, error_data: bool = True) -> dict[str, Any]:
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    if error_data:
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert isinstance(error["error_data"]["details"], str) and error["error_data"]["details"]
    else:
        assert "error_data" not in error
    return error


# ---- the send endpoint -------------------------------------------------------------


def test_send_text_in_window_returns_meta_success_shape(sim: RunningCloudSimulator) -> None:
    sim.control.inbound(USER, PNID, "hi business")
    response = send(sim, text(to="+1 (555) 123-4567"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+1 (555) 123-4567", "wa_id": USER}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.") and len(message["id"]) > 30
    [logged] = sim.control.sent()
    assert logged["id"] == message["id"] and logged["wa_id"] == USER and logged["text"] == "hello"


def test_template_goes_through_without_window(sim: RunningCloudSimulator) -> None:
    response = send(sim, template())
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["message_status"] == "accepted"
    assert sim.control.sent()[0]["template"] == "order_update"


def test_invalid_missing_and_expired_tokens_are_190(sim: RunningCloudSimulator) -> None:
    bad = send(sim, template(), token="nope")
    error = assert_graph_error(bad, 401, 190, error_data=False)
    assert error["type"] == "OAuthException"
    assert bad.headers["www-authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')
    missing = httpx.post(sim.graph_url(PNID), json=template())
    assert_graph_error(missing, 401, 190, error_data=False)
    # Graph also accepts the token as a query parameter.
    via_query = httpx.post(sim.graph_url(PNID), params={"access_token": TOKEN}, json=template())
    assert via_query.status_code == 200
    sim.control.revoke_token(TOKEN)
    expired = assert_graph_error(send(sim, template()), 401, 190, error_data=False)
    assert expired["error_subcode"] == 463
    assert len(sim.control.sent()) == 1  # only the query-token send was accepted


def test_unknown_number_or_foreign_token_is_graph_method_exception(sim: RunningCloudSimulator) -> None:
    unknown = assert_graph_error(send(sim, template(), pnid="999"), 400, 100, error_data=False)
    assert unknown["type"] == "GraphMethodException" and unknown["error_subcode"] == 33
    foreign = assert_graph_error(send(sim, template(), token=OTHER_TOKEN), 400, 100, error_data=False)
    assert foreign["error_subcode"] == 33
    assert_graph_error(send(sim, template(), version="latest"), 400, 2500, error_data=False)


def test_text_body_limit_is_4096_characters(sim: RunningCloudSimulator) -> None:
    sim.control.inbound(USER, PNID, "hi")
    assert send(sim, text(body="\u00e9" * 4096)).status_code == 200
    error = assert_graph_error(send(sim, text(body="x" * 4097)), 400, 100)
    assert error["message"] == "(#100) Invalid parameter"
    assert "4096" in error["error_data"]["details"]
    assert len(sim.control.sent()) == 1


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, "to"),
        ({"messaging_product": "sms", "to": USER, "type": "text", "text": {"body": "x"}}, "messaging_product"),
        ({"to": USER, "type": "text", "text": {"body": "x"}}, "messaging_product"),
        ({"messaging_product": "whatsapp", "to": USER, "type": "fax", "fax": {}}, "type"),
        ({"messaging_product": "whatsapp", "to": USER, "type": "text"}, "text['body']"),
        ({"messaging_product": "whatsapp", "to": USER, "type": "text", "text": {}}, "text['body']"),
        ({"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {"name": "t"}}, "template['language']"),
        ({"messaging_product": "whatsapp", "to": "abc", "type": "template",
          "template": {"name": "t", "language": {"code": "en"}}}, "to"),
    ],
)
def test_malformed_requests_are_invalid_parameter(sim: RunningCloudSimulator, body: dict[str, Any], detail: str) -> None:
    error = assert_graph_error(send(sim, body), 400, 100)
    assert detail in error["error_data"]["details"]


def test_non_json_body_is_invalid_parameter(sim: RunningCloudSimulator) -> None:
    response = httpx.post(sim.graph_url(PNID), content=b"to=1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert_graph_error(response, 400, 100)


# ---- limits -------------------------------------------------------------------------


async def test_throughput_limit_is_130429_per_number(sim: RunningCloudSimulator) -> None:
    sim.control.set_limits(throughput_per_second=5)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        responses = await asyncio.gather(
            *(client.post(sim.graph_url(PNID), json=template(to=f"1555000{i:04d}")) for i in range(8))
        )
        assert sorted(r.status_code for r in responses) == [200] * 5 + [400] * 3
        for r in responses:
            if r.status_code == 400:
                assert_graph_error(r, 400, 130429)
        # Another number has its own budget.
        other = await client.post(
            sim.graph_url(OTHER_PNID), json=template(), headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
        )
        assert other.status_code == 200
        await asyncio.sleep(1.05)
        again = await client.post(sim.graph_url(PNID), json=template(to="15559999999"))
        assert again.status_code == 200
    assert len(sim.control.sent(phone_number_id=PNID)) == 6


def test_default_throughput_is_80_per_second(sim: RunningCloudSimulator) -> None:
    assert sim.control.config()["throughput_per_second"] == 80
    sim.control.set_limits(pair_burst=None)
    codes = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        start = time.monotonic()
        for i in range(81):
            codes.append(client.post(sim.graph_url(PNID), json=template(to=f"1666000{i:04d}")).status_code)
        elapsed = time.monotonic() - start
    if elapsed < 1.0:  # only meaningful when the burst fit in one second
        assert codes.count(200) == 80 and codes[-1] == 400


def test_pair_rate_limit_is_131056_per_recipient(sim: RunningCloudSimulator) -> None:
    sim.control.set_limits(pair_burst=3, pair_refill_seconds=60)
    codes = [send(sim, template()).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    error = assert_graph_error(send(sim, template()), 400, 131056)
    assert "same phone number" in error["error_data"]["details"]
    assert send(sim, template(to="15557654321")).status_code == 200
    sim.control.set_limits(pair_burst=3, pair_refill_seconds=0.1)
    time.sleep(0.15)
    assert send(sim, template()).status_code == 200
    assert len(sim.control.sent(to=USER)) == 4


# ---- customer-service window, undeliverable, transient ------------------------------------


def test_free_form_outside_window_is_131047_and_inbound_opens_it(sim: RunningCloudSimulator) -> None:
    error = assert_graph_error(send(sim, text()), 400, 131047)
    assert "24 hours" in error["error_data"]["details"]
    sim.control.inbound(USER, PNID, "hello?")
    assert send(sim, text()).status_code == 200
    # The window belongs to (business number, user).
    assert_graph_error(send(sim, text(), token=OTHER_TOKEN, pnid=OTHER_PNID), 400, 131047)
    sim.control.advance_clock(24 * 3600 + 1)
    assert_graph_error(send(sim, text()), 400, 131047)
    assert send(sim, template()).status_code == 200
    sim.control.set_window(enforce=False)
    assert send(sim, text()).status_code == 200
    assert [m["type"] for m in sim.control.sent()] == ["text", "template", "text"]


def test_window_failure_can_arrive_as_failed_webhook(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.set_failure_delivery("webhook")
    response = send(sim, text())
    assert response.status_code == 200
    wamid = response.json()["messages"][0]["id"]
    post = wait_until(lambda: [p for p in list(receiver.posts) if p.value.get("statuses")])[0]
    [status] = post.value["statuses"]
    assert status["id"] == wamid and status["status"] == "failed" and status["recipient_id"] == USER
    [err] = status["errors"]
    assert err["code"] == 131047 and err["title"] == "Re-engagement message"
    assert err["error_data"]["details"] and "conversation" not in status and "pricing" not in status
    time.sleep(0.1)
    assert receiver.statuses() == [(wamid, "failed")]
    assert sim.control.sent()[0]["failed_code"] == 131047


def test_undeliverable_numbers_sync_and_async(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.set_undeliverable(["+1 555 000 0000"])
    assert_graph_error(send(sim, template(to="15550000000")), 400, 131026)
    assert sim.control.sent() == []
    sim.control.set_failure_delivery("webhook")
    wamid = send(sim, template(to="15550000000")).json()["messages"][0]["id"]
    wait_until(lambda: receiver.statuses() == [(wamid, "failed")])
    err = receiver.posts[0].value["statuses"][0]["errors"][0]
    assert err["code"] == 131026 and err["message"] and err["href"]
    assert send(sim, template()).status_code == 200  # others unaffected


def test_transient_failures_are_131000_and_never_accepted(sim: RunningCloudSimulator) -> None:
    sim.control.set_failure_rate(1.0)
    error = assert_graph_error(send(sim, template()), 500, 131000)
    assert error["message"] == "(#131000) Something went wrong"
    assert sim.control.sent() == []
    sim.control.set_failure_rate(0.5)
    codes = [send(sim, template(to=f"1777000{i:04d}")).status_code for i in range(40)]
    assert 0 < codes.count(500) < 40 and set(codes) == {200, 500}
    assert len(sim.control.sent()) == codes.count(200)


# ---- outages ----------------------------------------------------------------------------


def test_outage_error_mode_answers_5xx_and_control_keeps_working(sim: RunningCloudSimulator) -> None:
    sim.control.set_outage("error")
    assert_graph_error(send(sim, template()), 503, 2)
    sim.control.set_outage("error", status=500)
    assert_graph_error(send(sim, template()), 500, 2)
    assert sim.control.config()["outage"]["mode"] == "error"
    sim.control.set_outage("off")
    assert send(sim, template()).status_code == 200
    assert len(sim.control.sent()) == 1


def test_outage_hang_mode_exceeds_client_timeout(sim: RunningCloudSimulator) -> None:
    sim.control.set_outage("hang", hang_seconds=10)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        send(sim, template(), timeout=0.3)
    assert time.monotonic() - start < 2
    sim.control.set_outage("off")
    assert send(sim, template()).status_code == 200
    # A request held during the outage is never accepted.
    assert len(sim.control.sent()) == 1


def test_outage_hang_gives_up_with_504(sim: RunningCloudSimulator) -> None:
    sim.control.set_outage("hang", hang_seconds=0.2)
    assert_graph_error(send(sim, template()), 504, 2)


# ---- status webhooks ---------------------------------------------------------------------


def test_status_webhooks_are_signed_meta_envelopes_in_order(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.inbound(USER, PNID, "hi")
    wamid = send(sim, text(biz_opaque_callback_data="order-42")).json()["messages"][0]["id"]
    wait_until(lambda: [s for _, s in receiver.statuses()] == ["sent", "delivered", "read"])
    posts = [p for p in receiver.posts if p.value.get("statuses")]
    for post in posts:
        assert post.signature_ok
        assert post.headers["content-type"] == "application/json"
        assert post.headers["x-hub-signature-256"].startswith("sha256=")
        assert post.headers["x-hub-signature"].startswith("sha1=")
        body = post.json
        assert body["object"] == "whatsapp_business_account"
        [entry] = body["entry"]
        assert entry["id"] == "900000000000001"
        [change] = entry["changes"]
        assert change["field"] == "messages"
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"] == {"display_phone_number": "15550001001", "phone_number_id": PNID}
        [status] = value["statuses"]
        assert status["id"] == wamid and status["recipient_id"] == USER
        assert status["timestamp"].isdigit()
        assert status["biz_opaque_callback_data"] == "order-42"
    sent, delivered, read = (p.value["statuses"][0] for p in posts)
    assert sent["conversation"]["origin"]["type"] == "service" and sent["conversation"]["expiration_timestamp"].isdigit()
    assert sent["pricing"] == {"billable": False, "pricing_model": "PMP", "category": "service",
                               "type": "free_customer_service"}
    assert "expiration_timestamp" not in delivered["conversation"] and delivered["pricing"]["category"] == "service"
    assert "pricing" not in read and "conversation" not in read
    wait_until(lambda: sim.control.sent()[0]["statuses"] == ["sent", "delivered", "read"])


def test_template_outside_window_is_billed(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    send(sim, template())
    sent = wait_until(lambda: [p for p in list(receiver.posts) if p.value["statuses"][0]["status"] == "sent"])[0]
    pricing = sent.value["statuses"][0]["pricing"]
    assert pricing == {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}


def test_signature_is_over_raw_escaped_bytes(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.inbound(USER, PNID, "ol\u00e1 \u2713 https://example.com/a", name="Jos\u00e9")
    post = wait_until(lambda: list(receiver.posts))[0]
    assert post.signature_ok
    # Meta escapes non-ASCII and "/"; re-serialising the parsed JSON changes the bytes.
    assert b"\\u00e1" in post.raw and b"\\u2713" in post.raw and b"https:\\/\\/example.com\\/a" in post.raw
    reserialised = json.dumps(post.json, separators=(",", ":"), ensure_ascii=False).encode()
    assert not verify_signature_256(reserialised, post.headers["x-hub-signature-256"], APP_SECRET)
    assert post.value["messages"][0]["text"]["body"] == "ol\u00e1 \u2713 https://example.com/a"


def test_inbound_delivers_messages_webhook(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    wamid = sim.control.inbound("+15551234567", PNID, "where is my order?", name="Ana")
    post = wait_until(lambda: list(receiver.posts))[0]
    value = post.value
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": USER}]
    [message] = value["messages"]
    assert message["from"] == USER and message["id"] == wamid and message["type"] == "text"
    assert message["text"] == {"body": "where is my order?"} and message["timestamp"].isdigit()
    assert value["metadata"]["phone_number_id"] == PNID
    with pytest.raises(CloudControlError) as unknown:
        sim.control.inbound(USER, "424242", "x")
    assert unknown.value.status_code == 404


def test_mark_as_read_of_inbound_message(sim: RunningCloudSimulator) -> None:
    wamid = sim.control.inbound(USER, PNID, "hi")
    ok = send(sim, {"messaging_product": "whatsapp", "status": "read", "message_id": wamid})
    assert ok.status_code == 200 and ok.json() == {"success": True}
    assert_graph_error(send(sim, {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"}), 400, 100)
    assert sim.control.sent() == []


def test_status_delays_and_read_receipts_off(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.set_status_delays(sent=0.0, delivered=0.02, read=None)
    wamid = send(sim, template()).json()["messages"][0]["id"]
    wait_until(lambda: receiver.statuses() == [(wamid, "sent"), (wamid, "delivered")])
    time.sleep(0.2)
    assert receiver.statuses() == [(wamid, "sent"), (wamid, "delivered")]


def test_webhook_retries_with_exponential_backoff(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.set_status_delays(sent=0.0, delivered=None, read=None)
    receiver.script[:] = [500, 503]
    wamid = send(sim, template()).json()["messages"][0]["id"]
    wait_until(lambda: receiver.statuses() == [(wamid, "sent")])
    attempts = [p for p in receiver.posts]
    assert [p.answered for p in attempts] == [500, 503, 200]
    assert attempts[0].raw == attempts[1].raw == attempts[2].raw  # same bytes, same signature
    [delivery] = wait_until(lambda: [d for d in sim.control.deliveries(wamid) if d["outcome"] == "delivered"])
    times = [a["at"] for a in delivery["attempts"]]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert times[1] - times[0] >= 0.045 and times[2] - times[1] >= 0.095  # base, then 2x base


def test_webhook_gives_up_after_max_attempts(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.set_status_delays(sent=0.0, delivered=None, read=None)
    receiver.script[:] = [500] * 10
    wamid = send(sim, template()).json()["messages"][0]["id"]
    [delivery] = wait_until(lambda: [d for d in sim.control.deliveries(wamid) if d["outcome"] == "gave_up"])
    assert len(delivery["attempts"]) == 4  # max_attempts of the module config
    assert len(receiver.posts) == 4


def test_duplicate_delivery_switch(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.configure_webhook(duplicates=True)
    wamid = send(sim, template()).json()["messages"][0]["id"]
    wait_until(lambda: len(receiver.statuses()) == 6)
    counts = {s: receiver.statuses().count((wamid, s)) for s in ("sent", "delivered", "read")}
    assert counts == {"sent": 2, "delivered": 2, "read": 2}
    by_status: dict[str, set[bytes]] = {}
    for post in receiver.posts:
        by_status.setdefault(post.value["statuses"][0]["status"], set()).add(post.raw)
    assert all(len(raws) == 1 for raws in by_status.values())  # byte-identical copies


def test_out_of_order_delivery_switch(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.configure_webhook(out_of_order=True)
    sim.control.set_status_delays(sent=0.0, delivered=0.15, read=0.3)
    wamid = send(sim, template()).json()["messages"][0]["id"]
    wait_until(lambda: len(receiver.statuses()) == 3)
    assert receiver.statuses() == [(wamid, "read"), (wamid, "delivered"), (wamid, "sent")]
    stamps = {p.value["statuses"][0]["status"]: int(p.value["statuses"][0]["timestamp"]) for p in receiver.posts}
    assert stamps["sent"] <= stamps["delivered"] <= stamps["read"]  # timestamps tell the true order


def test_no_callback_means_no_delivery(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    sim.control.configure_webhook(callback_url=None)
    send(sim, template())
    time.sleep(0.2)
    assert receiver.posts == [] and sim.control.deliveries() == []
    assert sim.control.sent()[0]["statuses"] == ["sent", "delivered", "read"]


# ---- subscription handshake ------------------------------------------------------------------


def test_configuring_a_callback_runs_the_subscribe_handshake(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    url = receiver.url + "?tenant=a"
    result = sim.control.configure_webhook(callback_url=url, verify_token=VERIFY_TOKEN, app_secret=APP_SECRET)
    [handshake] = receiver.handshakes
    assert handshake["hub.mode"] == "subscribe" and handshake["hub.verify_token"] == VERIFY_TOKEN
    assert handshake["hub.challenge"].isdigit() and handshake["tenant"] == "a"
    assert result["verification"]["ok"] and result["verification"]["body"] == handshake["hub.challenge"]
    assert sim.control.config()["webhook"]["callback_url"] == url


def test_failed_handshake_refuses_the_callback(sim: RunningCloudSimulator, receiver: Receiver) -> None:
    receiver.verify_token = "something-else"
    with pytest.raises(CloudControlError) as refused:
        sim.control.configure_webhook(callback_url=receiver.url + "?v=2", verify_token=VERIFY_TOKEN)
    assert refused.value.status_code == 400
    assert refused.value.body["error"]["code"] == "verification_failed"
    assert refused.value.body["error"]["details"]["status_code"] == 403
    assert sim.control.config()["webhook"]["callback_url"] == receiver.url  # unchanged
    sim.control.configure_webhook(callback_url=receiver.url + "?v=3", verify=False)
    assert sim.control.config()["webhook"]["callback_url"] == receiver.url + "?v=3"
    with pytest.raises(CloudControlError) as unreachable:
        sim.control.configure_webhook(callback_url="http://127.0.0.1:9/hook", verify_token=VERIFY_TOKEN)
    assert unreachable.value.body["error"]["details"]["error"]


# ---- control API ------------------------------------------------------------------------------


def test_control_registers_numbers_validates_and_resets(sim: RunningCloudSimulator) -> None:
    sim.control.register_phone_number("3003", "token-3003", display_phone_number="15550003003")
    assert send(sim, template(), token="token-3003", pnid="3003").status_code == 200
    with pytest.raises(CloudControlError) as bad:
        sim.control.set_limits(throughput_per_second=0)
    assert bad.value.status_code == 422 and bad.value.body["error"]["code"] == "validation_error"
    with pytest.raises(CloudControlError):
        sim.control.set_outage("sideways")
    sim.control.set_limits(throughput_per_second=None)
    assert sim.control.config()["throughput_per_second"] is None
    sim.control.reset()
    config = sim.control.config()
    assert config["throughput_per_second"] == 80 and config["pair_burst"] == 45
    assert [p["phone_number_id"] for p in config["phone_numbers"]] == [PNID, OTHER_PNID]
    assert sim.control.sent() == []
    assert_graph_error(send(sim, template(), token="token-3003", pnid="3003"), 401, 190, error_data=False)


def test_sent_log_counts_each_accepted_message_once(sim: RunningCloudSimulator) -> None:
    sim.control.set_limits(pair_burst=2, pair_refill_seconds=60)
    results = [send(sim, template()).status_code for _ in range(4)]
    assert results == [200, 200, 400, 400]
    ids = [m["id"] for m in sim.control.sent()]
    assert len(ids) == len(set(ids)) == 2
    assert sim.state.log.items()[0].id == ids[0]  # the live state agrees with the API


def test_cli_entry_point_serves_the_simulator() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wa_ray.simulator.cli", "cloud", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/_control/health", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(healthy, timeout=15)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
