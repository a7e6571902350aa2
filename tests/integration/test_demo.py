"""`wa-ray demo` (the README's first command) walks a newcomer from QR to a delivered message; run again in the
same data dir, its number exists already and showed its first QR before the demo's stream opened."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from tests.conftest import ADMIN_KEY_ID
from wa_ray.entry.demo import SESSION, WORKSPACE, _demo

pytestmark = pytest.mark.asyncio

PHONE = "15557990"


async def test_a_rerun_scans_the_qr_its_number_already_shows_and_gets_to_the_ack(
        service, api, web_sim, admin_secret) -> None:
    sessions = f"/v1/workspaces/{WORKSPACE}/sessions"
    assert (await api.post(sessions, json={"session_id": SESSION})).status_code in (200, 201)
    for _ in range(200):  # the first QR is out before the demo starts (its first QR lives 60 s)
        if (await api.get(f"{sessions}/{SESSION}/qr")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    out = io.StringIO()
    demo = asyncio.create_task(_demo(Console(file=out, width=300), service.base_url, web_sim.url, ADMIN_KEY_ID,
                                     admin_secret, PHONE))
    try:
        for _ in range(300):
            if "End to end works" in out.getvalue() or demo.done():
                break
            await asyncio.sleep(0.1)
        if demo.done():
            demo.result()  # its error, if it ended with one
        assert "End to end works" in out.getvalue(), out.getvalue()[-3000:]
        assert "Hello from wa-ray" in out.getvalue()
        assert (await api.get(f"{sessions}/{SESSION}")).json()["state"] == "connected"
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
        await api.delete(f"{sessions}/{SESSION}")
