"""The sender (actors/outbound.py) on its own, in-process: a real linked Chromium page on the simulator,
a real Redis, no Ray. The chaos suite's "sender stall", one cause at a time:

1. an intent whose owner's heartbeat never stops (a sender incarnation left running) heads the queue:
   trusted for a while, then judged by the page alone (gone document -> `unconfirmed`), and the
   messages queued behind it go out;
2. the page holds the key and keeps ack 0 (its server never answered): after the same bound it is
   failed `unconfirmed`, never resent, so when WhatsApp does take it late it is there once;
3. a sender whose page is closed for good stops, heartbeat included, so a successor resolves the
   intent it left at once instead of waiting for a live-looking owner.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.messages.helpers import PageSignals
from wa_ray.actors import outbound
from wa_ray.actors.outbound import SessionSender
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import write_key_file
from wa_ray.sessions.page import PageSession
from wa_ray.storage import keys
from wa_ray.storage.messages import MessageStore, OutboundMessage
from wa_ray.config import CHROMIUM_FLAGS, default_chromium
from wa_ray.runtime import RuntimeConfig

WS = "sender-bound"
SENT = {"sent", "delivered", "read"}


class Host(PageSignals):
    """What the BrowserHost does for a sender, and no more: the page's `ready` lets it send."""

    def __init__(self) -> None:
        super().__init__()
        self.sender: SessionSender | None = None

    async def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        await super().__call__(kind, payload)
        if kind == "ready" and self.sender is not None:
            self.sender.connected.set()


@pytest.fixture
async def browser():
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        yield b
        await b.close()


@pytest.fixture
def config(bare_redis_url: str, web_sim, tmp_path) -> RuntimeConfig:
    write_key_file(tmp_path / "master.key", [MasterKey.from_b64(MasterKey.generate_b64())])
    return RuntimeConfig(redis_url=bare_redis_url, web_url=web_sim.url + "/", data_dir="/nonexistent",
                         master_key_file=str(tmp_path / "master.key"), pacing=False, typing_delay=False)


async def _open(browser, config: RuntimeConfig, host: Host, phone: str | None,
                state: bytes | None = None) -> PageSession:
    """A page linked to `phone` by scanning its QR (or restored from `state`), synced."""
    page = PageSession(browser, config.web_url, host)
    await page.open(state)
    if state is None:
        qr = (await host.wait("qr"))["qr"]
        async with httpx.AsyncClient(base_url=config.web_url) as sim:
            assert (await sim.post(f"/_phone/{phone}/scan", json={"qr": qr})).status_code == 200
    await host.wait("ready")
    return page


async def _accept(store: MessageStore, sid: str, to: str, text: str) -> str:
    mid = "m-" + secrets.token_hex(6)
    await store.accept(OutboundMessage(mid, WS, sid, to, text, "normal"), None)
    return mid


async def _intent(redis, store: MessageStore, sid: str, to: str, text: str, owner: str, **fields: str) -> str:
    """A message as a sender leaves it between intent and answer: `sending`, in that sender's pending list."""
    mid = await _accept(store, sid, to, text)
    await redis.hset(keys.message(WS, mid), mapping={"status": "sending", "owner": owner, **fields})
    await redis.xreadgroup(keys.QUEUE_GROUP, f"{sid}@{owner}", {keys.queue(WS, sid, "normal"): ">"})
    return mid


async def _hand_to_page(page: PageSession, config: RuntimeConfig, phone: str, to: str, text: str,
                        hold_ms: int) -> tuple[str, str]:
    """Send `text` from the page under a key minted as the sender mints it; the server takes it but answers
    (and delivers) only after `hold_ms`. Returns (key, page document)."""
    assert page.page is not None
    minted = await page.mint_key()
    async with httpx.AsyncClient(base_url=config.web_url) as sim:
        before = (await sim.get("/_sim/stats")).json()["messages"]["from_pages"]
        assert (await sim.put(f"/_phone/{phone}/config", json={"latency_ms": hold_ms})).status_code == 200
        await page.send(to, text, minted.key, wait_until_sent=False)
        while (await sim.get("/_sim/stats")).json()["messages"]["from_pages"] == before:  # the server has it
            await asyncio.sleep(0.05)
        assert (await sim.put(f"/_phone/{phone}/config", json={"latency_ms": 0})).status_code == 200
    return minted.key, minted.document


async def _wait_status(store: MessageStore, mid: str, statuses: set[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    record: dict[str, str] = {}
    while time.monotonic() < deadline:
        record = await store.record(WS, mid)
        if record.get("status") in statuses:
            return record
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{mid} never reached {sorted(statuses)}; last: {record}")


async def _inbox(config: RuntimeConfig, number: str) -> list[str]:
    async with httpx.AsyncClient(base_url=config.web_url) as sim:
        return [m["body"] for m in (await sim.get(f"/_phone/{number}/inbox")).json()["messages"]]


async def _stop(task: asyncio.Task[Any], sender: SessionSender) -> None:
    """As the host closes a sender: stop() and cancel. A cancellation alone can be lost on 3.11 (an inner
    timeout that completes as it lands swallows it), which is why stop() exists."""
    sender.stop()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=20)
    assert done, "a stopped and cancelled sender ends"


async def test_a_head_intent_whose_owner_never_dies_is_bounded(browser, config, redis, monkeypatch) -> None:
    monkeypatch.setattr(outbound, "UNRESOLVED_LIMIT_S", 3.0)
    sid, phone, to = "b1", "15552710001", "15552710002"
    store = MessageStore(redis)
    await store.ensure_queues(WS, sid)
    host = Host()
    page = await _open(browser, config, host, phone)
    # a sender incarnation that was never stopped: its heartbeat goes on, its page document is gone
    await redis.set(keys.sender_alive("zombie"), f"{sid}@zombie", ex=120)
    head = await _intent(redis, store, sid, to, "stuck head", "zombie", doc="a-document-that-died",
                         wa_key="3EB0B0B0B0B00001")
    behind = [await _accept(store, sid, to, f"behind {i}") for i in range(3)]
    sender = SessionSender(redis, WS, sid, page, config)
    host.sender = sender
    sender.connected.set()
    started = time.monotonic()
    task = asyncio.create_task(sender.run())
    try:
        failed = await _wait_status(store, head, {"failed"}, timeout=30)
        took = time.monotonic() - started
        for mid in behind:
            await _wait_status(store, mid, SENT, timeout=30)
    finally:
        await _stop(task, sender)
        await page.close()
    assert failed["reason"].startswith("unconfirmed"), failed
    assert took >= 3.0, f"a live owner is trusted until the bound ({took:.1f} s)"
    assert sorted(await _inbox(config, to)) == ["behind 0", "behind 1", "behind 2"]  # the head never sent


async def test_a_key_the_page_keeps_at_ack_0_is_failed_unconfirmed_never_resent(browser, config, redis,
                                                                                   monkeypatch) -> None:
    monkeypatch.setattr(outbound, "UNRESOLVED_LIMIT_S", 3.0)
    sid, phone, to = "b2", "15552720001", "15552720002"
    store = MessageStore(redis)
    await store.ensure_queues(WS, sid)
    host = Host()
    page = await _open(browser, config, host, phone)
    sender = SessionSender(redis, WS, sid, page, config)
    host.sender = sender
    # the sender's own intent, handed to the page, whose server holds the answer back for 10 s
    key, doc = await _hand_to_page(page, config, phone, to, "slow answer", hold_ms=10_000)
    head = await _intent(redis, store, sid, to, "slow answer", sender.epoch, doc=doc, wa_key=key)
    behind = await _accept(store, sid, to, "behind it")
    sender.connected.set()
    task = asyncio.create_task(sender.run())
    try:
        failed = await _wait_status(store, head, {"failed"}, timeout=9)  # before the server's answer
        await _wait_status(store, behind, SENT, timeout=30)
        deadline = time.monotonic() + 20
        while "slow answer" not in await _inbox(config, to) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # its late ack reaches the page meanwhile
    finally:
        await _stop(task, sender)
        await page.close()
    assert failed["reason"].startswith("unconfirmed"), failed
    assert sorted(await _inbox(config, to)) == ["behind it", "slow answer"], "each once: never resent"
    assert (await store.record(WS, head))["status"] == "failed"


async def test_a_sender_whose_page_closed_stops_and_its_intent_resolves_at_once(browser, config, redis) -> None:
    sid, phone, to = "b3", "15552730001", "15552730002"
    store = MessageStore(redis)
    await store.ensure_queues(WS, sid)
    first_host = Host()
    first_page = await _open(browser, config, first_host, phone)
    state = await first_page.storage_state()
    first = SessionSender(redis, WS, sid, first_page, config)
    first.connected.set()  # and nobody clears it: a replaced page's sender hears no signal
    # its send is with the server, whose answer is 10 s away
    key, doc = await _hand_to_page(first_page, config, phone, to, "in flight", hold_ms=10_000)
    head = await _intent(redis, store, sid, to, "in flight", first.epoch, doc=doc, wa_key=key)
    first_task = asyncio.create_task(first.run())
    await asyncio.sleep(1.0)
    assert await redis.exists(keys.sender_alive(first.epoch))
    assert (await store.record(WS, head))["status"] == "sending", "waiting for the server's answer"

    await first_page.close()  # the page dies with the intent open
    await asyncio.wait_for(first_task, timeout=10)  # the sender stops by itself
    assert not await redis.exists(keys.sender_alive(first.epoch)), "no heartbeat left to look alive"

    host = Host()
    page = await _open(browser, config, host, None, state)
    behind = await _accept(store, sid, to, "after it")
    sender = SessionSender(redis, WS, sid, page, config)
    sender.connected.set()
    started = time.monotonic()
    task = asyncio.create_task(sender.run())
    try:
        failed = await _wait_status(store, head, {"failed"}, timeout=15)
        took = time.monotonic() - started
        await _wait_status(store, behind, SENT, timeout=30)
    finally:
        await _stop(task, sender)
        await page.close()
    assert failed["reason"].startswith("unconfirmed"), failed
    assert took < outbound.UNRESOLVED_LIMIT_S, f"resolved without waiting for the bound ({took:.1f} s)"
    inbox = await _inbox(config, to)
    assert inbox.count("after it") == 1 and inbox.count("in flight") <= 1, inbox  # never resent
