"""Deliveries from the running service verified with the Standard Webhooks reference verifier (the
`standardwebhooks` package of PyPI), unchanged: a `whsec_` secret as is, a secret of the first form through
`whsec_` + its base64; a retry keeps its `webhook-id` and is signed afresh. Attacks: a malformed `whsec_`
secret is refused without being echoed, and no secret ever travels in a delivery."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import orjson
from standardwebhooks.webhooks import Webhook

from wa_ray.actors.webhook_signing import standard_secret_of, verify
from tests.messages.helpers import publish_events
from tests.receiver import Receiver, running_receiver


async def _deliveries(hook: Receiver, event_id: str, n: int, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        got = [d for d in hook.deliveries if d.headers.get("webhook-id") == event_id]
        if len(got) >= n:
            return got
        assert time.monotonic() < deadline, f"{len(got)} of {n} deliveries of {event_id}"
        await asyncio.sleep(0.05)


async def test_every_delivery_verifies_with_the_reference_verifier(api, service) -> None:
    standard = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    first_form = "an-older-secret-0123456789"
    for ws, secret in (("hooks-standard", standard), ("hooks-first-form", first_form)):
        with running_receiver() as hook:
            assert (await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": hook.url, "secret": secret})
                    ).status_code == 204
            ids = await publish_events(service, ws, 3)
            verifier = Webhook(standard_secret_of(secret))
            for event_id in ids:
                (delivery,) = await _deliveries(hook, event_id, 1)
                event = verifier.verify(delivery.body, delivery.headers)
                assert event["id"] == event_id == delivery.headers["x-event-id"]
                assert delivery.headers["webhook-signature"].startswith("v1,")
                # the first scheme's signature rides along for receivers written against it
                assert verify(secret, delivery.headers["x-timestamp"], delivery.body, delivery.headers["x-signature"])
                assert secret not in str(delivery.headers) and secret.encode() not in delivery.body


async def test_a_retry_keeps_its_webhook_id_and_is_signed_afresh(api, service) -> None:
    ws, secret = "hooks-standard-retry", "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with running_receiver() as hook:
        assert (await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": hook.url, "secret": secret})
                ).status_code == 204
        await api.put(f"/v1/workspaces/{ws}/webhook/policy", json={"max_attempts": 3, "base_delay_s": 1.1})
        hook.status = 503
        (event_id,) = await publish_events(service, ws, 1)
        await _deliveries(hook, event_id, 1)
        hook.status = 200
        first, second = (await _deliveries(hook, event_id, 2))[:2]
        verifier = Webhook(secret)
        for d in (first, second):
            assert verifier.verify(d.body, d.headers)["id"] == event_id
        assert first.body == second.body
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert second.headers["webhook-signature"] != first.headers["webhook-signature"]


async def test_a_malformed_standard_secret_is_refused_and_never_echoed(api) -> None:
    ws = "hooks-bad-secret"
    for secret in ("whsec_" + base64.b64encode(b"short").decode() + "A" * 12, "whsec_!!!!not-base64!!!!"):
        answer = await api.put(f"/v1/workspaces/{ws}/webhook", json={"url": "http://127.0.0.1:9/h", "secret": secret})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"]
        assert secret not in answer.text
    good = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    ok = await api.put(f"/v1/workspaces/{ws}/webhook", content=orjson.dumps({"url": "http://127.0.0.1:9/h",
                                                                            "secret": good}),
                       headers={"Content-Type": "application/json"})
    assert ok.status_code == 204 and good not in ok.text
