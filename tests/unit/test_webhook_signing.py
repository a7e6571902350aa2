"""Our webhook signatures (actors/webhook_signing.py) checked by the Standard Webhooks reference verifier
(the `standardwebhooks` package of PyPI), for both forms of secret."""

from __future__ import annotations

import base64
import os
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from wa_ray.actors.webhook_signing import (is_standard_secret, sign_standard, standard_key, standard_secret_of)

BODY = b'{"id":"1733500000000-0","type":"message.received","data":{"text":"h\\u00e9"}}'


def _headers(secret: str, event_id: str, ts: str, body: bytes) -> dict[str, str]:
    return {"webhook-id": event_id, "webhook-timestamp": ts,
            "webhook-signature": sign_standard(standard_key(secret), event_id, ts, body)}


@pytest.mark.parametrize("secret", [
    "whsec_" + base64.b64encode(os.urandom(24)).decode(),
    "whsec_" + base64.b64encode(os.urandom(64)).decode(),
    "a-legacy-secret-of-our-first-scheme",
])
def test_the_reference_verifier_accepts_our_signature(secret: str) -> None:
    ts = str(int(time.time()))
    headers = _headers(secret, "1733500000000-0", ts, BODY)
    assert Webhook(standard_secret_of(secret)).verify(BODY, headers)["type"] == "message.received"


def test_the_reference_verifier_refuses_a_changed_body_id_timestamp_or_secret() -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    ts = str(int(time.time()))
    headers = _headers(secret, "1-0", ts, BODY)
    verifier = Webhook(secret)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY.replace(b"received", b"reveived"), headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY, {**headers, "webhook-id": "2-0"})
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY, {**headers, "webhook-timestamp": str(int(ts) + 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(BODY, headers)
    stale = str(int(time.time()) - 3600)  # the verifier's own tolerance refuses an old capture
    with pytest.raises(WebhookVerificationError):
        verifier.verify(BODY, _headers(secret, "1-0", stale, BODY))


@pytest.mark.parametrize(("secret", "ok"), [
    ("whsec_" + base64.b64encode(b"k" * 24).decode(), True),
    ("whsec_" + base64.b64encode(b"k" * 64).decode(), True),
    ("whsec_" + base64.b64encode(b"k" * 23).decode(), False),
    ("whsec_" + base64.b64encode(b"k" * 65).decode(), False),
    ("whsec_not*base64*at*all*", False),
    ("plain-secret-0123456789", False),
])
def test_what_counts_as_a_standard_secret(secret: str, ok: bool) -> None:
    assert is_standard_secret(secret) is ok
