"""WhatsApp Web simulator, driven through real Chromium exactly the way whatsapp-web.js reads the page."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

import wa_ray.simulator.wa_web
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
)

# whatsapp-web.js's sendMessage, reduced to the text path it takes.
SEND_JS = """async ({to, body}) => {
  const WidFactory = window.require('WAWebWidFactory');
  const chatWid = WidFactory.createWid(to);
  const chat = window.require('WAWebCollections').Chat.get(chatWid)
    || (await window.require('WAWebFindChatAction').findOrCreateLatestChat(chatWid))?.chat;
  window.require('WAWebStreamModel').Stream.markAvailable();
  await window.require('WAWebUpdateUnreadChatAction').sendSeen({chat, threadId: undefined});
  window.require('WAWebStreamModel').Stream.markUnavailable();
  const { getIsNewsletter, getIsBroadcast } = window.require('WAWebChatGetters');
  if (getIsNewsletter(chat) || getIsBroadcast(chat)) throw new Error('wrong chat kind');
  const { getMaybeMeLidUser, getMaybeMePnUser } = window.require('WAWebUserPrefsMeUser');
  const from = chat.id.isLid() ? getMaybeMeLidUser() : getMaybeMePnUser();
  const MsgKey = window.require('WAWebMsgKey');
  const newId = await MsgKey.newId();
  const key = new MsgKey({from, to: chat.id, id: newId, participant: undefined, selfDir: 'out'});
  const message = {
    id: key, ack: 0, body, from, to: chat.id, local: true, self: 'out',
    t: parseInt(new Date().getTime() / 1000), isNewMsg: true, type: 'chat',
    ...window.require('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat),
  };
  window.__acks = [];
  const Msg = window.require('WAWebCollections').Msg;
  Msg.on('change:ack', (msg, ack) => { if (msg.id._serialized === key._serialized) window.__acks.push(ack); });
  const [msgPromise, sendResult] = window.require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
  const inMsgAtOnce = !!Msg.get(key._serialized);
  const msg = await msgPromise;
  const result = await sendResult;
  return { id: newId, serialized: key._serialized, inMsgAtOnce, result, model: msg.serialize(),
           links: window.require('WALinkify').findLinks(msg.body).length };
}"""


@pytest.fixture(scope="module")
def short_sim() -> Iterator[RunningSimulator]:
    with running_web_simulator(SimConfig(qr_first_ttl_s=0.6, qr_next_ttl_s=0.4, qr_max_refs=2)) as running:
        yield running


async def link(ctx: BrowserContext, sim: RunningSimulator, number: str) -> Page:
    return await link_page(ctx, sim.url, number)


async def test_qr_scan_restore_and_unlink(sim: RunningSimulator, browser: Browser, context: BrowserContext) -> None:
    page, qr = await open_qr_page(context, sim.url)
    parts = qr.split(",")
    assert len(parts) == 5 and all(parts)
    # Humans (and old whatsapp-web.js) see the same string on the page.
    assert await page.get_attribute("div[data-ref]", "data-ref") == qr
    assert await page.locator("div[data-ref] canvas").count() == 1
    assert isinstance(await page.evaluate("window.Debug.VERSION"), str)
    assert await page.evaluate("window.require('WAWebCallCollection') === undefined")

    # Listener attached before the scan, as whatsapp-web.js does during inject.
    await page.evaluate(
        "window.require('WAWebSocketModel').Socket.on('change:hasSynced', () => { window.__synced = true; })"
    )
    async with AsyncPhoneClient(sim.url, "15550001") as phone:
        device_id = await phone.scan(qr)
        await wait_state(page, "CONNECTED")
        await page.wait_for_function("window.__synced === true")
        info = await page.evaluate(
            "({...window.require('WAWebConnModel').Conn.serialize(), wid: window.require('WAWebUserPrefsMeUser').getMaybeMePnUser()})"
        )
        assert info["wid"]["_serialized"] == "15550001@c.us" and info["pushname"] and info["platform"]
        assert [d["device_id"] for d in await phone.devices()] == [device_id]

        saved = await context.storage_state(indexed_db=True)
        refs_before = sim.state.counters.refs_issued

        restored = await browser.new_context(storage_state=saved)
        try:
            page2 = await restored.new_page()
            await page2.goto(sim.url)
            await wait_state(page2, "CONNECTED")
            assert sim.state.counters.refs_issued == refs_before  # no QR offered
            # A late listener still gets its change:hasSynced (whatsapp-web.js `ready`).
            await page2.evaluate(
                "window.require('WAWebSocketModel').Socket.on('change:hasSynced', (s) => { window.__synced = s.hasSynced; })"
            )
            await page2.wait_for_function("window.__synced === true")
            await page2.evaluate("window.require('WAWebCmd').Cmd.on('logout', () => { window.__logout = true; })")

            assert await phone.unlink() == [device_id]
            await page2.wait_for_function("window.__logout === true")
            await page2.wait_for_url("**/?post_logout=1")
            await wait_state(page2, "UNPAIRED")
        finally:
            await restored.close()

    # The same saved state now lands on the QR screen.
    stale = await browser.new_context(storage_state=saved)
    try:
        page3 = await stale.new_page()
        await page3.goto(sim.url)
        await wait_state(page3, "UNPAIRED")
        assert len((await page3.evaluate(BUILD_QR_JS)).split(",")) == 5
    finally:
        await stale.close()


async def test_expired_and_foreign_refs(short_sim: RunningSimulator, context: BrowserContext) -> None:
    page, first_qr = await open_qr_page(context, short_sim.url)
    await page.evaluate(
        "window.__refs = []; window.require('WAWebConnModel').Conn.on('change:ref', (_, ref) => window.__refs.push(ref))"
    )
    await page.wait_for_function("window.__refs.length >= 1", timeout=5000)
    async with AsyncPhoneClient(short_sim.url, "15550002") as phone:
        with pytest.raises(PhoneError) as expired:
            await phone.scan(first_qr)
        assert (expired.value.status, expired.value.code) == (410, "qr_expired")
        parts = first_qr.split(",")
        with pytest.raises(PhoneError) as unknown:
            await phone.scan(",".join(["2@nope", *parts[1:]]))
        assert (unknown.value.status, unknown.value.code) == (404, "qr_unknown")
        # After qr_max_refs the page stops offering codes...
        await wait_state(page, "UNPAIRED_IDLE", timeout=5000)
        # ...until it is asked again (the real page's reload button / Cmd.refreshQR()).
        await page.evaluate("window.require('WAWebCmd').Cmd.refreshQR()")
        await wait_state(page, "UNPAIRED")
        await phone.scan(await page.evaluate(BUILD_QR_JS))
        await wait_state(page, "CONNECTED")


async def test_send_lands_once_and_acks(sim: RunningSimulator, context: BrowserContext) -> None:
    page = await link(context, sim, "15550003")
    async with AsyncPhoneClient(sim.url, "15550004") as recipient:
        await recipient.set_config(delivered_ms=40, read_ms=80)
        out = await page.evaluate(SEND_JS, {"to": "15550004@c.us", "body": "hello https://example.com"})
        assert out["inMsgAtOnce"] and out["result"]["messageSendResult"] == "OK"
        assert out["model"]["id"]["fromMe"] is True and out["links"] == 1
        await page.wait_for_function("window.__acks.length >= 3", timeout=5000)
        assert await page.evaluate("window.__acks") == [1, 2, 3]
        inbox = await recipient.inbox()
        assert [(m["id"], m["from"], m["to"], m["body"]) for m in inbox] == [
            (out["id"], "15550003", "15550004", "hello https://example.com")
        ]


async def test_inbound_message_fires_add(sim: RunningSimulator, context: BrowserContext) -> None:
    page = await link(context, sim, "15550005")
    await page.evaluate("""() => {
      window.__added = [];
      window.require('WAWebCollections').Msg.on('add', (msg) => {
        if (msg.isNewMsg && msg.type !== 'ciphertext') window.__added.push(msg.serialize());
      });
    }""")
    async with AsyncPhoneClient(sim.url, "15550006") as phone:
        msg_id = await phone.send("15550005", "ping")
        await page.wait_for_function("window.__added.length === 1", timeout=5000)
        group_msg = await phone.send("15550005", "in a group", group_id="120363000000000001")
        await page.wait_for_function("window.__added.length === 2", timeout=5000)
    direct, grouped = await page.evaluate("window.__added")
    assert direct["id"]["id"] == msg_id and direct["id"]["fromMe"] is False
    assert direct["id"]["_serialized"] == f"false_15550006@c.us_{msg_id}"
    assert direct["body"] == "ping" and direct["type"] == "chat" and direct["isNewMsg"] is True
    assert direct["from"]["_serialized"] == "15550006@c.us" and direct["to"]["_serialized"] == "15550005@c.us"
    assert isinstance(direct["t"], int) and "ack" in direct
    assert grouped["id"]["id"] == group_msg and grouped["from"]["_serialized"] == "120363000000000001@g.us"
    assert grouped["author"]["_serialized"] == "15550006@c.us"


async def test_phone_api_validation(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        bad = await http.post("/_phone/+1555/messages", json={"to": "15550001", "body": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_number"
        assert set(bad.json()["error"]) == {"code", "message", "details"}
        bad_to = await http.post("/_phone/15550007/messages", json={"to": "abc", "body": "x"})
        assert bad_to.status_code == 400
        foreign = await http.post("/_phone/15550007/scan", json={"qr": "a,b,c,d,e"})
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "qr_unknown"
        cfg = await http.put("/_sim/config", json={"qr_max_refs": 6})
        assert cfg.status_code == 200 and cfg.json()["qr_max_refs"] == 6
        stats = (await http.get("/_sim/stats")).json()
        assert {"pages", "devices", "messages"} <= set(stats)


async def test_drop_and_pairing_code(sim: RunningSimulator, browser: Browser, context: BrowserContext) -> None:
    page = await link(context, sim, "15550008")
    states: list[Any] = []
    await page.expose_function("reportState", lambda st: states.append(st))
    await page.evaluate(
        "window.require('WAWebSocketModel').Socket.on('change:state', (_s, st) => window.reportState(st))"
    )
    async with AsyncPhoneClient(sim.url, "15550008") as phone:
        assert await phone.drop(0.5) == 1
        await page.wait_for_function(f"{STATE_JS} === 'TIMEOUT'", timeout=5000)
        await wait_state(page, "CONNECTED")
        assert states[0] == "TIMEOUT" and states[-1] == "CONNECTED"

    other = await browser.new_context()
    try:
        page2 = await other.new_page()
        await page2.goto(sim.url)
        await wait_state(page2, "UNPAIRED")
        code = await page2.evaluate("""async () => {
          const api = window.require('WAWebAltDeviceLinkingApi');
          api.setPairingType('ALT_DEVICE_LINKING');
          await api.initializeAltDeviceLinking();
          return api.startAltLinkingFlow('15550009', true);
        }""")
        assert len(code) == 8
        async with AsyncPhoneClient(sim.url, "15550010") as wrong:
            with pytest.raises(PhoneError):
                await wrong.link_with_code(code)
        async with AsyncPhoneClient(sim.url, "15550009") as phone:
            await phone.link_with_code(code)
        await wait_state(page2, "CONNECTED")
    finally:
        await other.close()


WWEBJS_VERSION = "1.34.7"


def _wwebjs_dir() -> Path | None:
    """whatsapp-web.js installed once per machine (PUPPETEER_SKIP_DOWNLOAD: we bring Chromium)."""
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    root = Path(os.environ.get("WA_RAY_WWEBJS_DIR", Path.home() / ".cache" / "wa-ray" / f"wwebjs-{WWEBJS_VERSION}"))
    if (root / "node_modules" / "whatsapp-web.js" / "package.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}
    try:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root), f"whatsapp-web.js@{WWEBJS_VERSION}"],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return root


@pytest.mark.npm
def test_real_whatsapp_web_js_client(tmp_path: Path) -> None:
    """The unmodified library is the reference client: if it works, the surface is right."""
    root = _wwebjs_dir()
    if root is None:
        pytest.skip("node/npm or the whatsapp-web.js package is not available")
    script = Path(wa_ray.simulator.wa_web.__file__).parent / "wwebjs_e2e.js"
    with running_web_simulator() as running:
        env = {
            **os.environ,
            "SIM": running.url,
            "AUTH_DIR": str(tmp_path / "auth"),
            "NODE_PATH": str(root / "node_modules"),
        }
        proc = subprocess.run(["node", str(script)], check=False, env=env, capture_output=True, text=True, timeout=90)
        inbox = running.state.phones["15550901"].inbox
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    names = [e["ev"] for e in events]
    assert proc.returncode == 0, (names, proc.stdout[-3000:], proc.stderr[-3000:])
    assert names[:3] == ["qr", "scan", "authenticated"] and events[0]["parts"] == 5
    first = next(e["id"] for e in events if e["ev"] == "sent")
    assert [e["ack"] for e in events if e["ev"] == "ack" and e["id"] == first] == [1, 2, 3]
    assert any(e["ev"] == "message" and e["body"] == "hello back" for e in events)
    assert "ready_restored" in names and "unexpected_qr" not in names
    assert events[-1] == {"ev": "disconnected", "reason": "UNPAIRED"}
    assert inbox[0].body == "hello from whatsapp-web.js"
    _check_kinds_received({e["ev"]: e for e in events})
    _check_kinds_sent({e["ev"]: e for e in events})
    _check_conversations({e["ev"]: e for e in events}, running.url)
    assert "code_unexpected_qr" not in names and [e["length"] for e in events if e["ev"] == "code"] == [8]
    assert {e["ev"]: e for e in events}["code_ready"]["wid"] == "15550902@c.us"


def _check_conversations(ev: dict[str, dict], url: str) -> None:
    """The library's getChats/getContacts/getContactById/fetchMessages/isRegisteredUser/sendSeen/
    sendStateTyping/getProfilePicUrl/getContactLidAndPhone against the seeded history (30 chats x 80)."""
    chats = ev["conv_chats"]
    assert (chats["count"], chats["seededFound"], chats["withLast"]) == (31, 30, 31)  # + the chat with PEER
    group = chats["group"]
    assert group["name"].startswith("Group ") and group["lastMessage"] and len(group["participants"]) == 6
    assert "15550900@c.us" in group["participants"]
    assert sum(p.endswith("@lid") for p in group["participants"]) == 1  # the lid whose phone is unknown
    contacts = ev["conv_contacts"]
    assert contacts["count"] >= 40 and contacts["myContacts"] >= 10
    assert len(contacts["lids"]) == 4  # 1 lid_unknown chat + the 3 groups' unknown lids; known lids come as phones
    assert ev["conv_contact"]["same"] and ev["conv_contact"]["number"] == ev["conv_contact"]["id"].split("@")[0]
    assert ev["conv_fetch"] | {"ev": None, "fromMe": None} == {"ev": None, "count": 60, "unique": 60, "ordered": True,
                                                                "fromMe": None}
    assert ev["conv_registered"] == {"ev": "conv_registered", "peer": True, "unknown": False,
                                     "numberId": "15550901@c.us"}
    assert ev["conv_seen"] == {"ev": "conv_seen", "seen": True, "chat": "15550901@c.us", "by": "15550900",
                               "unreadAfter": 0}
    assert ev["conv_states"]["states"][-2:] == ["composing", "paused"]
    assert ev["conv_pic"]["url"] == f"{url}/_sim/pp/15550901@c.us.png" and ev["conv_pic"]["none"] is None
    lid = ev["conv_lid"]
    known, unknown, peer = lid["pairs"]
    assert known["lid"] == lid["known"] and known["pn"].endswith("@c.us")
    assert unknown == {"lid": lid["unknown"]}  # never a number made from the lid
    assert peer["pn"] == "15550901@c.us" and peer["lid"].endswith("@lid")


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
DOC = b"%PDF-1.4\n% wa-ray invoice 42\n" + b"x" * 3000 + b"\n%%EOF\n"  # as wwebjs_e2e.js builds them
VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Ada Lovelace\nTEL;type=CELL;waid=15550777:+1 555 50777\nEND:VCARD"


def _check_kinds_received(ev: dict[str, dict]) -> None:
    """The library's own `message`/`message_reaction`/`message_revoke_everyone`/`message_edit` events carry
    what the phone sent; downloadMedia() gives the same bytes back (decrypted in the page)."""
    assert ev["in_image"] | {"id": None} == {"ev": "in_image", "id": None, "hasMedia": True, "body": "a picture",
                                             "mimetype": "image/png", "same": True}
    assert ev["in_document"] == {"ev": "in_document", "body": "your invoice", "filename": "invoice-42.pdf",
                                 "mimetype": "application/pdf", "size": len(DOC), "same": True}
    assert ev["in_location"] == {"ev": "in_location", "lat": 52.52, "lng": 13.405,
                                 "description": "Brandenburger Tor\nPariser Platz, Berlin"}
    assert ev["in_vcard"]["vCards"] == [VCARD]
    sent = ev["sent"]["id"]
    assert (ev["in_reply"]["quotedId"], ev["in_reply"]["quotedBody"], ev["in_reply"]["fromMe"]) == (
        sent, "hello from whatsapp-web.js", True)
    assert (ev["in_reaction"]["reaction"], ev["in_reaction"]["msgId"], ev["in_reaction"]["reactions"]) == (
        "👍", sent, ["👍"])
    assert (ev["in_reaction_removed"]["reaction"], ev["in_reaction_removed"]["msgId"]) == ("", sent)
    assert (ev["in_revoke"]["type"], ev["in_revoke"]["id"]) == ("revoked", f"false_15550901@c.us_{ev['in_image']['id']}")
    assert (ev["in_edit"]["newBody"], ev["in_edit"]["prevBody"], ev["in_edit"]["body"]) == (
        "see you at 6", "see you at 5", "see you at 6")


def _check_kinds_sent(ev: dict[str, dict]) -> None:
    """What the library sent (its own MessageMedia/Location/vCard/quotedMessageId/react path) is what the
    phone's inbox shows, media by the sha256 of the uploaded bytes."""
    image, doc = ev["out_image"], ev["out_document"]
    assert (image["kind"], image["caption"], image["media"]["mimetype"], image["media"]["sha256"]) == (
        "image", "from the library", "image/png", hashlib.sha256(PNG).hexdigest())
    assert (doc["kind"], doc["caption"], doc["media"]["filename"], doc["media"]["sha256"]) == (
        "document", "invoice", "invoice-42.pdf", hashlib.sha256(DOC).hexdigest())
    assert ev["out_location"]["location"] == {"latitude": 52.52, "longitude": 13.405,
                                              "description": "Brandenburger Tor\nPariser Platz"}
    assert (ev["out_vcard"]["kind"], ev["out_vcard"]["vcards"]) == ("contacts", [VCARD])
    hello = ev["inbound"]["body"]["id"]
    assert (ev["out_reply"]["body"], ev["out_reply"]["quoted_id"]) == ("a reply", hello)
    assert ev["out_reaction"]["reaction"] == {"target_id": hello, "target_from_me": False, "emoji": "🎉"}


async def test_phone_kinds_validated_and_delivered_in_order_after_offline(sim: RunningSimulator,
                                                                         context: BrowserContext) -> None:
    """What a phone sends an offline device (a text, a picture, then a reaction, an edit and a revoke of them)
    reaches the page in order when it is back; bad bodies and unknown targets are refused at the phone API."""
    page = await link(context, sim, "15550031")
    async with AsyncPhoneClient(sim.url, "15550032") as phone, httpx.AsyncClient(base_url=sim.url) as http:
        bad = await http.post("/_phone/15550032/kinds", json={"to": "15550031", "kind": "image"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_body"
        bad = await http.post("/_phone/15550032/kinds", json={"to": "15550031", "kind": "location", "latitude": 1,
                                                              "longitude": 2, "caption": "no"})
        assert bad.status_code == 422
        with pytest.raises(PhoneError) as unknown:
            await phone.react("15550031", "3ANOSUCHMESSAGE", "👍")
        assert (unknown.value.status, unknown.value.code) == (404, "target_unknown")

        await page.close()  # the device is offline now: what follows waits for it
        async with AsyncPhoneClient(sim.url, "15550031") as linked:
            for _ in range(100):
                if not (await linked.devices())[0]["online"]:
                    break
                await asyncio.sleep(0.02)
        text = await phone.send("15550031", "v1")
        png = bytes(range(200))
        image = await phone.send_kind("15550031", "image", mimetype="image/png",
                                      data_b64=base64.b64encode(png).decode(), caption="pic")
        await phone.react("15550031", text, "❤️")
        await phone.edit("15550031", text, "v2")
        await phone.revoke("15550031", image)
        async with AsyncPhoneClient(sim.url, "15550031") as linked:
            with pytest.raises(PhoneError) as not_theirs:  # a phone edits only what it sent
                await linked.edit("15550032", text, "x")
            assert not_theirs.value.code == "target_unknown"
            for _ in range(100):  # each is queued after the sender's latency
                if [d["pending"] for d in await linked.devices()] == [5]:
                    break
                await asyncio.sleep(0.02)
            assert [d["pending"] for d in await linked.devices()] == [5]

        page = await context.new_page()
        await page.goto(sim.url)
        await wait_state(page, "CONNECTED")
        await page.wait_for_function(
            f"(window.require('WAWebCollections').Msg.get('false_15550032@c.us_{image}') || {{}}).type === 'revoked'",
            timeout=5000)
        got = await page.evaluate(f"""() => {{
          const Msg = window.require('WAWebCollections').Msg;
          const t = Msg.get('false_15550032@c.us_{text}');
          const i = Msg.get('false_15550032@c.us_{image}');
          return {{ body: t.body, edited: !!t.latestEditMsgKey, hasReaction: t.hasReaction, image: i.type,
                    protocolKey: i.protocolMessageKey && i.protocolMessageKey._serialized, path: i.directPath }};
        }}""")
        path = got.pop("path")
        assert got == {"body": "v2", "edited": True, "hasReaction": True, "image": "revoked",
                       "protocolKey": f"false_15550032@c.us_{image}"}
        # the media server holds the file encrypted (AES-CBC padded + 10-byte MAC): only the mediaKey opens it
        served = await http.get(path)
        assert served.status_code == 200 and png not in served.content
        assert len(served.content) == (len(png) // 16 + 1) * 16 + 10
        assert (await http.get("/v/t62.7118-24/MNOSUCH.enc")).status_code == 404
