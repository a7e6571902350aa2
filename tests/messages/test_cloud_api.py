"""The Cloud API adapter against the Cloud API simulator: Meta's shapes, and every error classified."""

from __future__ import annotations

import pytest

from wa_ray.actors.cloud_api import RETRYABLE, CloudApiClient, Failure, classify, parse
from wa_ray.storage.providers import CloudCredentials, CloudOptions
from wa_ray.egress import EgressGuard, EgressPolicy, no_dns_resolver

LOOPBACK_ALLOWED = EgressGuard(EgressPolicy.parse(["127.0.0.0/8"]), no_dns_resolver)  # the simulator's address

PNID = "700100"
TOKEN = "tok-adapter"


@pytest.fixture
async def client(cloud_sim):
    cloud_sim.control.register_phone_number(PNID, TOKEN)
    c = CloudApiClient(LOOPBACK_ALLOWED, max_connections=4)
    yield c
    await c.close()
    cloud_sim.control.set_outage("off")
    cloud_sim.control.set_limits(throughput_per_second=80, pair_burst=45, pair_refill_seconds=6.0)
    cloud_sim.control.set_window(enforce=True)


def creds(sim, token: str = TOKEN, timeout_s: float = 5.0) -> CloudCredentials:
    return CloudCredentials(PNID, token, "secret", sim.url, "v21.0", CloudOptions(timeout_s=timeout_s))


async def test_text_send_returns_the_wamid_and_carries_our_id(cloud_sim, client) -> None:
    cloud_sim.control.set_window(enforce=False)
    result = await client.send_text(creds(cloud_sim), "15557770001", "hello", "msg_adapter1")
    assert result.ok and result.wamid.startswith("wamid.")
    [sent] = [m for m in cloud_sim.control.sent(to="15557770001") if m["id"] == result.wamid]
    assert sent["request"]["biz_opaque_callback_data"] == "msg_adapter1"
    assert sent["request"]["text"] == {"body": "hello", "preview_url": False}


async def test_errors_are_classified_by_code(cloud_sim, client) -> None:
    c = creds(cloud_sim)
    window = await client.send_text(c, "15557770002", "outside the 24 h window", "m")
    assert (window.failure, window.code, window.retryable) == (Failure.REJECTED, 131047, False)
    bad_token = await client.send_text(creds(cloud_sim, token="nope"), "15557770002", "x", "m")
    assert (bad_token.failure, bad_token.code, bad_token.http_status) == (Failure.PROVIDER_DOWN, 190, 401)

    cloud_sim.control.set_window(enforce=False)
    cloud_sim.control.set_limits(pair_burst=1, pair_refill_seconds=60)
    assert (await client.send_text(c, "15557770003", "1", "m")).ok
    pair = await client.send_text(c, "15557770003", "2", "m")
    assert (pair.failure, pair.code, pair.http_status, pair.retryable) == (Failure.PAIR_LIMITED, 131056, 400, True)

    cloud_sim.control.set_limits(pair_burst=None, throughput_per_second=1)
    await client.send_text(c, "15557770004", "a", "m")
    throttled = await client.send_text(c, "15557770005", "b", "m")
    assert (throttled.failure, throttled.code, throttled.retryable) == (Failure.THROTTLED, 130429, True)

    cloud_sim.control.set_outage("error")
    down = await client.send_text(c, "15557770006", "c", "m")
    assert (down.failure, down.code, down.http_status) == (Failure.PROVIDER_DOWN, 2, 503)
    assert down.reason() == "cloud_api (#2): Meta service temporarily unavailable"
    assert window.reason() == "cloud_api (#131047): more than 24 hours since the customer's last message"


async def test_probe_sends_nothing_and_tells_up_from_down(cloud_sim, client) -> None:
    before = len(cloud_sim.control.sent())
    assert (await client.probe(creds(cloud_sim))).ok
    assert not (await client.probe(creds(cloud_sim, token="revoked-or-wrong"))).ok
    cloud_sim.control.set_outage("error")
    assert not (await client.probe(creds(cloud_sim))).ok
    assert len(cloud_sim.control.sent()) == before


async def test_a_hanging_api_is_an_unknown_outcome(cloud_sim, client) -> None:
    cloud_sim.control.set_outage("hang", hang_seconds=5)
    result = await client.send_text(creds(cloud_sim, timeout_s=0.3), "15557770007", "d", "m")
    assert result.failure is Failure.UNKNOWN  # the request went out; Meta may have accepted it


async def test_unreachable_api_is_provider_down_not_unknown() -> None:
    c = CloudApiClient(LOOPBACK_ALLOWED)
    try:
        dead = CloudCredentials(PNID, TOKEN, "s", "http://127.0.0.1:9", "v21.0", CloudOptions(timeout_s=1))
        assert (await c.send_text(dead, "15557770008", "x", "m")).failure is Failure.PROVIDER_DOWN
    finally:
        await c.close()


def test_classification_table() -> None:
    assert classify(130429, 400) is Failure.THROTTLED and classify(131056, 400) is Failure.PAIR_LIMITED
    assert classify(131000, 500) is Failure.PROVIDER_DOWN and classify(2, 503) is Failure.PROVIDER_DOWN
    assert classify(131026, 400) is Failure.REJECTED and classify(100, 400) is Failure.REJECTED
    assert classify(None, 502) is Failure.PROVIDER_DOWN and classify(999999, 400) is Failure.REJECTED
    assert RETRYABLE == {Failure.THROTTLED, Failure.PAIR_LIMITED}
    assert parse(502, b"<html>bad gateway</html>").failure is Failure.PROVIDER_DOWN


def test_failure_reasons_never_carry_the_answer_text() -> None:
    """The code is Meta's contract; the message and details are whatever answered, and stay out."""
    body = b'{"error": {"message": "REFLECTED-MESSAGE", "code": 131047, "error_data": {"details": "REFLECTED"}}}'
    assert parse(400, body).reason() == "cloud_api (#131047): more than 24 hours since the customer's last message"
    unknown = parse(418, b'{"error": {"message": "REFLECTED-MESSAGE", "code": 987654}}')
    assert unknown.reason() == "cloud_api (#987654): rejected, HTTP 4xx"
    assert parse(502, b"<html>REFLECTED</html>").reason() == "cloud_api: HTTP 5xx"
    huge = parse(400, b'{"error": {"code": "12345678901234567890"}}')
    assert huge.code is None and "REFLECTED" not in huge.reason()


async def test_a_denied_base_url_sends_nothing_and_says_why_in_our_words() -> None:
    c = CloudApiClient(EgressGuard(EgressPolicy(), no_dns_resolver))
    try:
        for base in ("http://127.0.0.1:9", "http://169.254.169.254", "http://metadata.google.internal"):
            result = await c.send_text(CloudCredentials(PNID, TOKEN, "s", base, "v21.0"), "15557770009", "x", "m")
            assert result.failure is Failure.PROVIDER_DOWN and result.reason().startswith("cloud_api: egress_denied (")
    finally:
        await c.close()
