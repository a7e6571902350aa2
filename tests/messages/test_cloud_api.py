"""The Cloud API adapter against the Cloud API simulator: Meta's shapes, and every error classified."""

from __future__ import annotations

import pytest

from actors.cloud_api import RETRYABLE, CloudApiClient, Failure, classify, parse
from storage.providers import CloudCredentials, CloudOptions

PNID = "700100"
TOKEN = "tok-adapter"


@pytest.fixture
async def client(cloud_sim):
    cloud_sim.control.register_phone_number(PNID, TOKEN)
    c = CloudApiClient(max_connections=4)
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
    assert "cloud_api (#2)" in down.reason()


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
    c = CloudApiClient()
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
