"""Phone-side control API of the WhatsApp Web simulator, each behaviour observed in real Chromium.

Covers what issue 3 lists beyond linking: ban, conflict/takeover, latency
injection, configured ack delays, failure rate, QR rotation timing, refused
scans, the phone's receive log for exactly-once checks, and `wa-sim web` run
standalone. Timings are asserted as lower bounds (the simulator must never be
early); upper bounds stay loose because the machine is shared.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from wa_ray.simulator.wa_web.config import SimConfig
from wa_ray.simulator.wa_web.testing import (
    BUILD_QR_JS,
    STATE_JS,
    AsyncPhoneClient,
    PhoneError,
    RunningSimulator,
    link_page,
    open_qr_page,
    running_web_simulator,
    wait_state,
    web_simulator_process,
)

# asyncio.sleep may wake a clock tick early; the page clock is a different one.
TOLERANCE_MS = 15
# Two page-side arrival times: each may lag by however busy the renderer was.
ARRIVAL_MS = 150

# Page-side recorder: every ack with its page time, inbound messages, state changes.
INSTRUMENT_JS = """() => {
  if (window.__t) return;
  window.__t = { sent: {}, acks: {}, states: [], inbound: [] };
  const now = () => performance.now();
  const Msg = window.require('WAWebCollections').Msg;
  Msg.on('change:ack', (msg, ack) => { (window.__t.acks[msg.id._serialized] ||= []).push([ack, now()]); });
  Msg.on('add', (msg) => {
    if (!msg.id.fromMe) window.__t.inbound.push({ id: msg.id.id, body: msg.body, t: now() });
  });
  window.require('WAWebSocketModel').Socket.on('change:state', (_s, st) => window.__t.states.push(st));
}"""

# whatsapp-web.js's text send path (Client.sendMessage -> addAndSendMsgToChat), timed.
SEND_JS = """async ({ to, body }) => {
  const chatWid = window.require('WAWebWidFactory').createWid(to);
  const { chat } = await window.require('WAWebFindChatAction').findOrCreateLatestChat(chatWid);
  const from = window.require('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const MsgKey = window.require('WAWebMsgKey');
  const key = new MsgKey({ from, to: chat.id, id: await MsgKey.newId(), selfDir: 'out' });
  const rec = window.__t.sent[key._serialized] = { id: key.id, t0: performance.now(), result: null };
  const [, result] = window.require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {
    id: key, ack: 0, body, from, to: chat.id, local: true, self: 'out',
    t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
  });
  result.then((r) => { rec.result = r.messageSendResult; });
  return { id: key.id, key: key._serialized };
}"""

# The same stanza sent again (a client retry): the phone's log must show it twice.
RESEND_JS = """(key) => {
  const msg = window.require('WAWebCollections').Msg.get(key);
  const chat = window.require('WAWebCollections').Chat.get(msg.to);
  window.require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, msg);
}"""


async def linked(ctx: BrowserContext, sim: RunningSimulator, number: str) -> Page:
    page = await link_page(ctx, sim.url, number)
    await page.evaluate(INSTRUMENT_JS)
    return page


async def send(page: Page, to: str, body: str) -> dict[str, str]:
    return dict(await page.evaluate(SEND_JS, {"to": to, "body": body}))


async def wait_ack(page: Page, key: str, ack: int, timeout: float = 5000) -> None:
    await page.wait_for_function(
        "([k, a]) => (window.__t.acks[k] || []).some(([x]) => x === a)", arg=[key, ack], timeout=timeout
    )


async def ack_times(page: Page, key: str) -> dict[int, float]:
    """ack -> milliseconds after the send call, as the page saw it."""
    rec = await page.evaluate("(k) => ({ t0: window.__t.sent[k].t0, acks: window.__t.acks[k] || [] })", key)
    return {int(ack): t - rec["t0"] for ack, t in rec["acks"]}


async def current_ack(page: Page, key: str) -> int:
    return int(await page.evaluate("(k) => window.require('WAWebCollections').Msg.get(k).ack", key))


async def inbound_bodies(page: Page) -> list[str]:
    return [m["body"] for m in await page.evaluate("window.__t.inbound")]


# --------------------------------------------------------------------- ban
async def test_ban_blocks_the_page_refuses_links_and_lifts(
    sim: RunningSimulator, browser: Browser, context: BrowserContext
) -> None:
    number, peer, friend = "15551001", "15551002", "15551003"
    page = await linked(context, sim, number)
    async with (
        AsyncPhoneClient(sim.url, number) as phone,
        AsyncPhoneClient(sim.url, peer) as peer_phone,
        AsyncPhoneClient(sim.url, friend) as friend_phone,
    ):
        await phone.ban()
        await wait_state(page, "TOS_BLOCK")

        # Nothing reaches a banned account, and nothing leaves it.
        await friend_phone.send(number, "while banned")
        queued = await send(page, f"{peer}@c.us", "queued while banned")
        await asyncio.sleep(0.4)
        assert await inbound_bodies(page) == []
        assert await peer_phone.inbox() == []
        assert await current_ack(page, queued["key"]) == 0

        # The ban sticks across a reconnect: the page comes back blocked, never CONNECTED.
        (device_id,) = [d["device_id"] for d in await phone.devices()]
        states_before = len(await page.evaluate("window.__t.states"))
        old_pages = {p.page_id for p in sim.state.device_pages(device_id)}
        await phone.drop(0.3)
        deadline = time.monotonic() + 5
        while not ({p.page_id for p in sim.state.device_pages(device_id)} - old_pages):
            assert time.monotonic() < deadline, "the page did not reconnect"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert await page.evaluate(STATE_JS) == "TOS_BLOCK"
        assert (await page.evaluate("window.__t.states"))[states_before:] == []

        # Linking another device is refused, by QR and by pairing code; the page keeps its QR.
        other = await browser.new_context()
        try:
            qr_page, qr = await open_qr_page(other, sim.url)
            with pytest.raises(PhoneError) as refused:
                await phone.scan(qr)
            assert (refused.value.status, refused.value.code) == (403, "banned")
            assert await qr_page.evaluate(STATE_JS) == "UNPAIRED"
            code = await qr_page.evaluate(
                "(n) => window.require('WAWebAltDeviceLinkingApi').startAltLinkingFlow(n, true)", number
            )
            with pytest.raises(PhoneError) as refused_code:
                await phone.link_with_code(code)
            assert (refused_code.value.status, refused_code.value.code) == (403, "banned")
        finally:
            await other.close()
        assert len(await phone.devices()) == 1

        # Lifting the ban: CONNECTED again, the queued send goes out exactly once.
        await phone.ban(False)
        await wait_state(page, "CONNECTED")
        await wait_ack(page, queued["key"], 1)
        assert [m["body"] for m in await peer_phone.inbox()] == ["queued while banned"]
        await friend_phone.send(number, "after the ban")
        await page.wait_for_function("window.__t.inbound.length === 1", timeout=5000)
        assert await inbound_bodies(page) == ["after the ban"]


# ---------------------------------------------------------------- conflict
async def test_conflict_from_the_phone_and_takeover(sim: RunningSimulator, context: BrowserContext) -> None:
    number, peer = "15551011", "15551012"
    page = await linked(context, sim, number)
    async with AsyncPhoneClient(sim.url, number) as phone, AsyncPhoneClient(sim.url, peer) as peer_phone:
        assert await phone.conflict() == 1
        await wait_state(page, "CONFLICT")
        pending = await send(page, f"{peer}@c.us", "sent during conflict")
        await peer_phone.send(number, "to the conflicted page")
        await asyncio.sleep(0.4)
        assert await peer_phone.inbox() == [] and await inbound_bodies(page) == []

        # whatsapp-web.js (takeoverOnConflict) calls Store.AppState.takeover(): the Socket model.
        await page.evaluate("window.require('WAWebSocketModel').Socket.takeover()")
        await wait_state(page, "CONNECTED")
        await wait_ack(page, pending["key"], 1)
        assert [m["id"] for m in await peer_phone.inbox()] == [pending["id"]]
        # What waited during the conflict is delivered once, then live traffic flows.
        await page.wait_for_function("window.__t.inbound.length === 1", timeout=5000)
        await peer_phone.send(number, "after takeover")
        await page.wait_for_function("window.__t.inbound.length === 2", timeout=5000)
        assert await inbound_bodies(page) == ["to the conflicted page", "after takeover"]


async def test_opened_elsewhere_conflicts_and_takeover_swaps(
    sim: RunningSimulator, browser: Browser, context: BrowserContext
) -> None:
    number, peer = "15551021", "15551022"
    first = await linked(context, sim, number)
    saved = await context.storage_state(indexed_db=True)
    elsewhere = await browser.new_context(storage_state=saved)
    try:
        second = await elsewhere.new_page()
        await second.goto(sim.url)
        await wait_state(second, "CONNECTED")
        await second.evaluate(INSTRUMENT_JS)
        await wait_state(first, "CONFLICT")

        async with AsyncPhoneClient(sim.url, peer) as peer_phone:
            await peer_phone.send(number, "one")
            await second.wait_for_function("window.__t.inbound.length === 1", timeout=5000)
            await first.evaluate("window.require('WAWebSocketModel').Socket.takeover()")
            await wait_state(first, "CONNECTED")
            await wait_state(second, "CONFLICT")
            await peer_phone.send(number, "two")
            await first.wait_for_function("window.__t.inbound.length === 1", timeout=5000)
            await asyncio.sleep(0.3)
        # Each message reached exactly the page that held the session at the time.
        assert await inbound_bodies(first) == ["two"]
        assert await inbound_bodies(second) == ["one"]
    finally:
        await elsewhere.close()


async def test_a_held_conflict_answers_every_takeover_with_conflict_until_it_ends(
    sim: RunningSimulator, browser: Browser, context: BrowserContext
) -> None:
    """Another WhatsApp Web that takes over on conflict itself: while it holds the account, a takeover and a
    page opened from the saved state both stay CONFLICT; once it lets go, a takeover reclaims it."""
    number = "15551031"
    page = await linked(context, sim, number)
    saved = await context.storage_state(indexed_db=True)
    async with AsyncPhoneClient(sim.url, number) as phone:
        with pytest.raises(PhoneError) as refused:
            await phone.conflict(seconds=-1)
        assert refused.value.status == 422
        assert await phone.conflict(seconds=2.5) == 1
        held_from = time.monotonic()
        await wait_state(page, "CONFLICT")
        await page.evaluate("window.require('WAWebSocketModel').Socket.takeover()")
        await asyncio.sleep(0.5)
        assert await page.evaluate(STATE_JS) == "CONFLICT"
        assert "CONNECTED" not in (await page.evaluate("window.__t.states"))[-2:]
        reopened_ctx = await browser.new_context(storage_state=saved)
        try:
            reopened = await reopened_ctx.new_page()
            await reopened.goto(sim.url)
            await wait_state(reopened, "CONFLICT")
            await asyncio.sleep(max(0.0, 2.6 - (time.monotonic() - held_from)))
            await page.evaluate("window.require('WAWebSocketModel').Socket.takeover()")
            await wait_state(page, "CONNECTED")
            assert await reopened.evaluate(STATE_JS) == "CONFLICT"
        finally:
            await reopened_ctx.close()


# ---------------------------------------------------------- latency (slow)
async def test_latency_injection_slows_both_directions_measurably(
    sim: RunningSimulator, context: BrowserContext
) -> None:
    number, peer = "15551031", "15551032"
    latency_ms = 600
    page = await linked(context, sim, number)
    async with AsyncPhoneClient(sim.url, number) as phone, AsyncPhoneClient(sim.url, peer) as peer_phone:
        fast = await send(page, f"{peer}@c.us", "fast")
        await wait_ack(page, fast["key"], 1)
        fast_ack1 = (await ack_times(page, fast["key"]))[1]

        assert (await phone.set_config(latency_ms=latency_ms))["latency_ms"] == latency_ms
        slow = await send(page, f"{peer}@c.us", "slow")
        await wait_ack(page, slow["key"], 2)
        slow_acks = await ack_times(page, slow["key"])
        assert slow_acks[1] >= latency_ms - TOLERANCE_MS, slow_acks
        assert slow_acks[1] > fast_ack1
        # The recipient's receipts count from when the send reached the server.
        assert slow_acks[2] >= latency_ms + 50 - TOLERANCE_MS, slow_acks

        # Inbound to the slow page waits the same extra time.
        started = time.monotonic()
        await peer_phone.send(number, "inbound to a slow page")
        await page.wait_for_function("window.__t.inbound.length === 1", timeout=5000)
        assert time.monotonic() - started >= (latency_ms - TOLERANCE_MS) / 1000

        await phone.set_config(latency_ms=0)
        again = await send(page, f"{peer}@c.us", "fast again")
        await wait_ack(page, again["key"], 1)
        assert (await ack_times(page, again["key"]))[1] < slow_acks[1]


# ------------------------------------------------------------------- acks
async def test_ack_delays_follow_the_recipients_config(sim: RunningSimulator, context: BrowserContext) -> None:
    number = "15551041"
    page = await linked(context, sim, number)
    timed, never_delivered, never_read = "15551042", "15551043", "15551044"
    async with (
        AsyncPhoneClient(sim.url, timed) as a,
        AsyncPhoneClient(sim.url, never_delivered) as b,
        AsyncPhoneClient(sim.url, never_read) as c,
    ):
        cfg = await a.set_config(delivered_ms=300, read_ms=700)
        assert (cfg["delivered_ms"], cfg["read_ms"], cfg["fail_rate"]) == (300, 700, 0.0)
        assert (await b.set_config(delivered_ms=None))["delivered_ms"] is None
        assert (await c.set_config(delivered_ms=40, read_ms=None))["read_ms"] is None

        msg_a = await send(page, f"{timed}@c.us", "timed")
        msg_b = await send(page, f"{never_delivered}@c.us", "held at the server")
        msg_c = await send(page, f"{never_read}@c.us", "delivered, never read")
        await wait_ack(page, msg_a["key"], 3)
        times = await ack_times(page, msg_a["key"])
        assert list(times) == [1, 2, 3]
        assert times[1] < times[2] < times[3]
        assert times[2] >= 300 - TOLERANCE_MS and times[3] >= 700 - TOLERANCE_MS, times

        await wait_ack(page, msg_c["key"], 2)
        await asyncio.sleep(0.3)
        assert await current_ack(page, msg_b["key"]) == 1
        assert await current_ack(page, msg_c["key"]) == 2
        assert [m["body"] for m in await b.inbox()] == ["held at the server"]


async def test_failure_rate_fails_with_ack_minus_one_and_no_inbox_entry(
    sim: RunningSimulator, context: BrowserContext
) -> None:
    number, dead, flaky = "15551051", "15551052", "15551053"
    page = await linked(context, sim, number)
    async with AsyncPhoneClient(sim.url, dead) as dead_phone, AsyncPhoneClient(sim.url, flaky) as flaky_phone:
        await dead_phone.set_config(fail_rate=1.0)
        failed_before = sim.state.counters.failed
        lost = await send(page, f"{dead}@c.us", "never arrives")
        await wait_ack(page, lost["key"], -1)
        await page.wait_for_function("(k) => window.__t.sent[k].result !== null", arg=lost["key"])
        assert await page.evaluate("(k) => window.__t.sent[k].result", lost["key"]) == "ERROR"
        assert [a for a, _ in await page.evaluate("(k) => window.__t.acks[k]", lost["key"])] == [-1]
        assert await dead_phone.inbox() == []
        assert sim.state.counters.failed == failed_before + 1

        # A partial rate: every send ends either OK (and is in the inbox once) or ERROR (and is not).
        await flaky_phone.set_config(fail_rate=0.5)
        sent = [await send(page, f"{flaky}@c.us", f"m{i}") for i in range(30)]
        keys = [s["key"] for s in sent]
        await page.wait_for_function(
            "(ks) => ks.every((k) => window.__t.sent[k].result !== null)", arg=keys, timeout=10_000
        )
        results = await page.evaluate("(ks) => ks.map((k) => window.__t.sent[k].result)", keys)
        ok_ids = [s["id"] for s, r in zip(sent, results, strict=True) if r == "OK"]
        assert 0 < len(ok_ids) < 30 and set(results) == {"OK", "ERROR"}
        assert [m["id"] for m in await flaky_phone.inbox()] == ok_ids


# ------------------------------------------------------------- QR timing
# Listen from DOMContentLoaded: app.js has defined window.require by then, and the
# first ref only comes after IndexedDB opened and the WebSocket said hello.
REF_RECORDER = """document.addEventListener('DOMContentLoaded', () => {
  window.__refs = [];
  const { Conn } = window.require('WAWebConnModel');
  const { Socket } = window.require('WAWebSocketModel');
  Conn.on('change:ref', (_c, ref) => { if (ref) window.__refs.push({ ref, ttl: Conn.refTTL, t: performance.now() }); });
  Socket.on('change:state', (_s, st) => { if (st === 'UNPAIRED_IDLE') window.__idleAt = performance.now(); });
});"""


async def test_qr_rotation_first_code_lives_longer_then_idle(browser: Browser) -> None:
    first_s, next_s = 1.5, 0.5
    with running_web_simulator(SimConfig(qr_first_ttl_s=first_s, qr_next_ttl_s=next_s, qr_max_refs=3)) as short:
        ctx = await browser.new_context()
        try:
            await ctx.add_init_script(REF_RECORDER)
            page, _ = await open_qr_page(ctx, short.url)
            async with AsyncPhoneClient(short.url, "15551061") as phone:
                await page.wait_for_function("window.__refs.length === 2", timeout=5000)
                second_qr = await page.evaluate(BUILD_QR_JS)
                await page.wait_for_function("window.__refs.length === 3", timeout=5000)
                # A later code is dead once replaced, well inside what the first code gets.
                with pytest.raises(PhoneError) as expired:
                    await phone.scan(second_qr)
                assert (expired.value.status, expired.value.code) == (410, "qr_expired")
                third_qr = await page.evaluate(BUILD_QR_JS)
                await wait_state(page, "UNPAIRED_IDLE", timeout=5000)
                with pytest.raises(PhoneError) as idle:
                    await phone.scan(third_qr)
                assert idle.value.code == "qr_expired"

                refs = await page.evaluate("window.__refs")
                idle_at = await page.evaluate("window.__idleAt")
                assert [r["ttl"] for r in refs] == [1500, 500, 500]
                # How long each code stood on the page (arrival jitter on a shared machine: ARRIVAL_MS).
                lifetimes = [b["t"] - a["t"] for a, b in itertools.pairwise(refs)]
                lifetimes.append(idle_at - refs[-1]["t"])
                assert lifetimes[0] >= first_s * 1000 - ARRIVAL_MS, lifetimes
                for later in lifetimes[1:]:
                    assert next_s * 1000 - ARRIVAL_MS <= later < first_s * 1000 - 300, lifetimes
                # Idle: no code on the page and no new ref until asked.
                assert await page.get_attribute("div[data-ref]", "data-ref") == ""
                await asyncio.sleep(next_s + 0.2)
                assert len(await page.evaluate("window.__refs")) == 3

                # Asking again restarts the cycle with a long-lived first code...
                await page.click("div[data-ref] button")
                await page.wait_for_function("window.__refs.length === 4", timeout=5000)
                assert (await page.evaluate("window.__refs"))[3]["ttl"] == 1500
                # ...which still scans after more than a later code's lifetime.
                await asyncio.sleep(next_s + 0.3)
                await phone.scan(await page.evaluate(BUILD_QR_JS))
                await wait_state(page, "CONNECTED")
        finally:
            await ctx.close()


async def test_default_rotation_is_60s_then_20s(sim: RunningSimulator, context: BrowserContext) -> None:
    page, _ = await open_qr_page(context, sim.url)
    assert await page.evaluate("window.require('WAWebConnModel').Conn.refTTL") == 60_000
    async with httpx.AsyncClient() as http:
        cfg = (await http.get(f"{sim.url}/_sim/config")).json()
    assert (cfg["qr_first_ttl_s"], cfg["qr_next_ttl_s"]) == (60.0, 20.0)


# ---------------------------------------------------------- refused scans
async def test_expired_foreign_and_reused_codes_are_refused(
    sim: RunningSimulator, browser: Browser, context: BrowserContext
) -> None:
    page_a, qr_a = await open_qr_page(context, sim.url)
    other = await browser.new_context()
    try:
        page_b, qr_b = await open_qr_page(other, sim.url)
        a, b = qr_a.split(","), qr_b.split(",")
        async with AsyncPhoneClient(sim.url, "15551071") as phone:
            attempts: list[tuple[str, tuple[int, str]]] = []
            for label, qr in [
                ("ref of A with the keys of B", ",".join([a[0], *b[1:]])),
                ("unknown ref, A's keys", ",".join(["2@" + "x" * 40, *a[1:]])),
                ("another platform", ",".join([*a[:4], "IOS"])),
                ("four parts", ",".join(a[:4])),
                ("not a QR at all", "hello"),
            ]:
                with pytest.raises(PhoneError) as err:
                    await phone.scan(qr)
                attempts.append((label, (err.value.status, err.value.code)))
            assert attempts == [
                ("ref of A with the keys of B", (404, "qr_unknown")),
                ("unknown ref, A's keys", (404, "qr_unknown")),
                ("another platform", (404, "qr_unknown")),
                ("four parts", (400, "qr_invalid")),
                ("not a QR at all", (400, "qr_invalid")),
            ]
            assert await phone.devices() == []
            assert await page_a.evaluate(STATE_JS) == "UNPAIRED"

            # A code whose page went away is expired, not linkable.
            await page_b.close()
            await asyncio.sleep(0.2)
            with pytest.raises(PhoneError) as gone:
                await phone.scan(qr_b)
            assert (gone.value.status, gone.value.code) == (410, "qr_expired")

            # A code works once; showing it again (a photo of the screen) fails.
            await phone.scan(qr_a)
            await wait_state(page_a, "CONNECTED")
            async with AsyncPhoneClient(sim.url, "15551072") as thief:
                with pytest.raises(PhoneError) as reused:
                    await thief.scan(qr_a)
                assert (reused.value.status, reused.value.code) == (410, "qr_expired")
                assert await thief.devices() == []
    finally:
        await other.close()


# ------------------------------------------------------------ receive log
async def test_phone_log_supports_exactly_once_assertions(sim: RunningSimulator, context: BrowserContext) -> None:
    number, peer = "15551081", "15551082"
    page = await linked(context, sim, number)
    async with AsyncPhoneClient(sim.url, number) as phone, AsyncPhoneClient(sim.url, peer) as peer_phone:
        (device_id,) = [d["device_id"] for d in await phone.devices()]
        before = time.time()
        sent = [await send(page, f"{peer}@c.us", f"hello {i}") for i in range(5)]
        for s in sent:
            await wait_ack(page, s["key"], 1)
        after = time.time()
        log = await peer_phone.inbox()
        assert [m["id"] for m in log] == [s["id"] for s in sent]
        assert all(m["from"] == number and m["to"] == peer and m["via"] == device_id for m in log)
        stamps = [m["ts"] for m in log]
        assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after

        # Sends made while the connection is down are queued by the page and land once.
        dropped_at = time.time()
        await phone.drop(0.6)
        await wait_state(page, "TIMEOUT", timeout=5000)
        queued = [await send(page, f"{peer}@c.us", f"queued {i}") for i in range(2)]
        await wait_state(page, "CONNECTED")
        for s in queued:
            await wait_ack(page, s["key"], 1)
        log = await peer_phone.inbox()
        ids = [m["id"] for m in log]
        assert ids == [s["id"] for s in sent + queued]
        assert all(count == 1 for count in Counter(ids).values())
        assert all(m["ts"] >= dropped_at + 0.6 - TOLERANCE_MS / 1000 for m in log[5:])

        # A retried stanza is recorded again, so a duplicate is visible, not hidden.
        await page.evaluate(RESEND_JS, sent[0]["key"])
        deadline = time.monotonic() + 5
        while len(log := await peer_phone.inbox()) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        duplicated = [i for i, n in Counter(m["id"] for m in log).items() if n > 1]
        assert duplicated == [sent[0]["id"]]


# -------------------------------------------------------------- standalone
async def test_wa_sim_web_runs_standalone(context: BrowserContext) -> None:
    with web_simulator_process() as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=5) as http:
            index = await http.get("/")
            assert index.status_code == 200 and "/static/app.js" in index.text
            assert (await http.get("/static/app.js")).status_code == 200
            cfg = await http.put("/_sim/config", json={"sync_delay_ms": 10})
            assert cfg.status_code == 200 and cfg.json()["sync_delay_ms"] == 10
            page = await link_page(context, proc.url, "15551091")
            stats: dict[str, Any] = (await http.get("/_sim/stats")).json()
            assert (stats["linked_pages"], stats["devices"], stats["scans"]) == (1, 1, 1)
            await page.close()


# ----------------------------------------------------------- many devices
async def test_ten_devices_from_one_simulator_process() -> None:
    """The 100-device figure comes from `python -m wa_ray.simulator.wa_web.capacity --devices 100`;
    this keeps the script honest at 10 devices."""
    from wa_ray.simulator.wa_web.capacity import format_report, run_capacity

    result = await run_capacity(devices=10, messages=20, concurrency=5, idle_s=1.0)
    print(format_report(result))
    phases = {p["name"]: p for p in result["phases"]}
    assert list(phases) == ["link", "idle", "browser", "ws"]
    assert phases["link"]["extra"]["devices"] == 10 and len(result["link_times_s"]) == 10
    browser = phases["browser"]
    assert browser["messages"] == 200 and browser["msgs_per_s"] > 0
    assert browser["extra"]["failed"] == 0
    assert (browser["extra"]["inboxes_checked"], browser["extra"]["inboxes_wrong"]) == (10, 0)
    assert phases["ws"]["extra"]["all_read"] and phases["ws"]["messages"] == 2000
    assert result["sim_stats"]["scans"] == 20 and result["sim_stats"]["messages"]["failed"] == 0
    # Linking is Chromium's work, not the simulator's.
    assert phases["link"]["cpu_pct"]["simulator"] < phases["link"]["cpu_pct"]["chromium"]
    assert 0 < result["simulator_peak_rss_mb"] < 1024
