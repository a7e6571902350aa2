"""Fixtures of the message-pipeline tests: a bare Redis for the store-level tests, and one Cloud API
simulator per run (the only fake besides the WhatsApp Web simulator). Service-level tests use the
session-wide `service` fixture from tests/conftest.py; each test picks its own workspace ids,
phone numbers and phone_number_ids so they never see each other's traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def cloud_sim() -> Iterator[object]:
    """Meta's realistic defaults stay on (24 h window, pair burst 45, 80/s); tests that need them off say so."""
    from wa_ray.simulator.cloud_api.testing import running_cloud_simulator

    with running_cloud_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def meta_app(service, cloud_sim, admin_secret: str):
    """One Meta app for the run: the simulator's webhooks go to our /webhooks/meta, signed with APP_SECRET.

    Meta verifies a callback before it saves it (the hub.challenge handshake), and our receiver only
    answers for a verify token some workspace configured, so one workspace is configured first."""
    import httpx

    from tests.conftest import ADMIN_KEY_ID
    from tests.messages.helpers import APP_SECRET, VERIFY_TOKEN, cloud_config
    from wa_ray.signing import HmacAuth

    cloud_sim.control.register_phone_number("700000", "tok-app")
    with httpx.Client(base_url=service.base_url, auth=HmacAuth(ADMIN_KEY_ID, admin_secret), timeout=30) as client:
        put = client.put("/v1/workspaces/msg-meta-app/provider",
                         json={"priority": "webjs", "cloud": cloud_config(cloud_sim, "700000", "tok-app")})
        assert put.status_code == 200, put.text
    cloud_sim.control.configure_webhook(callback_url=f"{service.base_url}/webhooks/meta", app_secret=APP_SECRET,
                                        verify_token=VERIFY_TOKEN, retry_base_delay=0.2, max_attempts=4, timeout=5)
    return cloud_sim
