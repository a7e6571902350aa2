"""The page call carries any kind and several messages in one evaluate (sessions/page.py send_many, the
bridge's sendMany), against the simulator's page: results in order, one per message; a message that
refers to an unknown target fails alone; media goes in from a file on disk; a key the page holds is never
sent twice."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.messages.helpers import PageSignals
from wa_ray.config import CHROMIUM_FLAGS, default_chromium
from wa_ray.sessions.page import PageItem, PageMedia, PageSend, PageSession, TargetNotFound, outgoing_id

PHONE, TO = "15552420001", "15552420002"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


@pytest.fixture
async def page(web_sim):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        signals = PageSignals()
        session = PageSession(browser, web_sim.url + "/", signals)
        await session.open(None)
        qr = (await signals.wait("qr"))["qr"]
        async with httpx.AsyncClient(base_url=web_sim.url) as sim:
            assert (await sim.post(f"/_phone/{PHONE}/scan", json={"qr": qr})).status_code == 200
        await signals.wait("ready")
        try:
            yield session
        finally:
            await session.close()
            await browser.close()


async def test_several_kinds_in_one_call(page: PageSession, web_sim, tmp_path) -> None:
    doc = tmp_path / "invoice.pdf"
    doc.write_bytes(PDF)
    doc.chmod(0o600)
    k1, k2, k3, k4 = [(await page.mint_key()).key for _ in range(4)]
    first = outgoing_id(TO, k1)
    ghost = f"false_{TO}@c.us_3A00000000DEADBEEF"
    results = await page.send_many([
        PageItem(TO, k1, "text", {"text": "first", "preview_url": False}),
        PageItem(TO, k2, "location", {"latitude": 1.0, "longitude": 2.0, "name": "Here", "address": None},
                 quoted_id=first),
        PageItem(TO, "", "reaction", {"emoji": "🎉"}, target_id=first),
        PageItem(TO, k3, "text", {"text": "lost"}, quoted_id=ghost),
        PageItem(TO, k4, "document", {"caption": "your invoice"},
                 media=PageMedia(str(doc), "application/pdf", "invoice-7.pdf")),
    ])
    assert results[:3] == [PageSend(first, False), PageSend(outgoing_id(TO, k2), False), PageSend(None, False)]
    assert isinstance(results[3], TargetNotFound)
    assert results[4] == PageSend(outgoing_id(TO, k4), False)
    assert page.page is not None
    assert await page.page.evaluate("document.querySelectorAll('input[type=file]').length") == 0

    async with httpx.AsyncClient(base_url=web_sim.url) as sim:
        got = {m["id"]: m for m in (await sim.get(f"/_phone/{TO}/inbox")).json()["messages"]}
        assert k3 not in got  # never taken by the page
        assert (got[k1]["body"], got[k1]["reactions"]) == ("first", {PHONE: "🎉"})
        assert (got[k2]["kind"], got[k2]["quoted_id"], got[k2]["location"]["description"]) == ("location", k1, "Here")
        media = got[k4]["media"]
        assert (got[k4]["kind"], got[k4]["caption"], media["filename"], media["mimetype"]) == (
            "document", "your invoice", "invoice-7.pdf", "application/pdf")
        assert (media["size"], media["sha256"]) == (len(PDF), hashlib.sha256(PDF).hexdigest())

        # the same key again is answered from the page's own record, and WhatsApp gets nothing new
        count = len((await sim.get(f"/_phone/{TO}/inbox")).json()["messages"])
        (again,) = await page.send_many([PageItem(TO, k1, "text", {"text": "first"})])
        assert again == PageSend(first, False)
        assert len((await sim.get(f"/_phone/{TO}/inbox")).json()["messages"]) == count
