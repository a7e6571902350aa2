"""A phone's existing history and the conversation modules of the simulator page, read through real Chromium
the way whatsapp-web.js 1.34.7 reads them (getChatModel, getContactModel, fetchMessages, getNumberId,
sendSeen, sendChatstate, getProfilePicUrl, enforceLidAndPnRetrieval)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page

from wa_ray.simulator.wa_web.testing import (
    AsyncPhoneClient,
    PhoneClient,
    PhoneError,
    RunningSimulator,
    link_page,
    running_web_simulator,
    wait_state,
)

# whatsapp-web.js's getChats (Utils.js getChatModel), as the library runs it in the page.
GET_CHATS_JS = """async () => {
  const C = window.require('WAWebCollections');
  const out = [];
  for (const chat of C.Chat.getModelsArray()) {
    const model = chat.serialize();
    model.isGroup = false;
    model.isMuted = chat.mute?.expiration !== 0;
    model.formattedTitle = chat.formattedTitle;
    if (chat.groupMetadata) {
      model.isGroup = true;
      await (C.GroupMetadata || C.WAWebGroupMetadataCollection).update(chat.id);
      const { toPn } = window.require('WAWebLidMigrationUtils');
      const gm = chat.groupMetadata.serialize();
      for (const p of gm.participants || []) p.id = toPn(p.id) ?? p.id;
      model.groupMetadata = gm;
      model.isReadOnly = chat.groupMetadata.announce;
    }
    model.lastMessage = null;
    if (model.msgs && model.msgs.length) {
      const last = C.Msg.get(chat.lastReceivedKey._serialized)
        || (await C.Msg.getMessagesById([chat.lastReceivedKey._serialized]))?.messages?.[0];
      if (last) model.lastMessage = { id: last.id.id, body: last.body, type: last.type, t: last.t };
    }
    model.loaded = chat.msgs.getModelsArray().map((m) => m.id.id);
    delete model.msgs;
    out.push(JSON.parse(JSON.stringify(model)));
  }
  return out;
}"""

# Chat.fetchMessages({limit}) as the library runs it.
FETCH_JS = """async ({chatId, limit}) => {
  const chat = window.require('WAWebCollections').Chat.get(chatId);
  let msgs = chat.msgs.getModelsArray().filter((m) => !m.isNotification);
  while (msgs.length < limit) {
    const loaded = await window.require('WAWebChatLoadMessages').loadEarlierMsgs({ chat });
    if (!loaded || !loaded.length) break;
    msgs = [...loaded.filter((m) => !m.isNotification), ...msgs];
  }
  if (msgs.length > limit) { msgs.sort((a, b) => (a.t > b.t ? 1 : -1)); msgs = msgs.splice(msgs.length - limit); }
  return { ids: msgs.map((m) => m.id.id), held: chat.msgs.length };
}"""

# getContactModel's reads for one contact.
CONTACT_JS = """async (id) => {
  const wid = window.require('WAWebWidFactory').createWid(id);
  const contact = await window.require('WAWebCollections').Contact.find(wid);
  const res = contact.serialize();
  const w = window.require('WAWebWidFactory').createWidFromWidLike(contact.id);
  if (w.isLid() && contact.phoneNumber) res.id = contact.phoneNumber;
  const G = window.require('WAWebContactGetters');
  const alt = window.require('WAWebApiContact').getAlternateUserWid(w);
  return JSON.parse(JSON.stringify({ id: res.id._serialized, name: G.getName(contact), pushname: G.getPushname(contact),
    userid: G.getUserid(contact), isMyContact: window.require('WAWebFrontendContactGetters').getIsMyContact(contact),
    isUser: G.getIsUser(contact), blocked: contact.isContactBlocked, alt: alt ? alt._serialized : null,
    isBusiness: !!contact.isBusiness }));
}"""

# enforceLidAndPnRetrieval (getContactLidAndPhone).
LID_PN_JS = """async (userId) => {
  const wid = window.require('WAWebWidFactory').createWid(userId);
  const Api = window.require('WAWebApiContact');
  const isLid = wid.server === 'lid';
  let lid = isLid ? wid : Api.getCurrentLid(wid);
  let phone = isLid ? Api.getPhoneNumber(wid) : wid;
  if (!isLid && !lid) {
    const q = await window.require('WAWebQueryExistsJob').queryWidExists(wid);
    if (!q?.wid) return {};
    lid = Api.getCurrentLid(wid);
  }
  if (isLid && !phone) {
    const q = await window.require('WAWebQueryExistsJob').queryWidExists(wid);
    if (!q?.wid) return {};
    phone = Api.getPhoneNumber(wid);
  }
  return { lid: lid?._serialized, pn: phone?._serialized };
}"""


async def _hooked(context: BrowserContext, sim: RunningSimulator, number: str) -> Page:
    """Link with a hasSynced listener that records what the page held at that moment."""
    await context.add_init_script("""(() => {
      const t = setInterval(() => {
        if (!window.require || !window.require('WAWebSocketModel')) return;
        clearInterval(t);
        window.require('WAWebSocketModel').Socket.on('change:hasSynced', () => {
          window.__atSync = window.require('WAWebCollections').Chat.getModelsArray().length;
        });
      }, 5);
    })()""")
    page = await link_page(context, sim.url, number)
    await page.wait_for_function("window.__atSync !== undefined", timeout=20_000)
    return page


async def test_history_arrives_complete_before_sync(sim: RunningSimulator, context: BrowserContext) -> None:
    """500 chats (groups with @lid participants, lid chats) are on the page before hasSynced, in order of t,
    with their last message, mute, unread and only the latest 50 messages held of a long chat."""
    async with AsyncPhoneClient(sim.url, "15551001") as phone:
        seeded = await phone.seed_history(chats=500, messages_per_chat=3, groups=20, contacts=100, lid_contacts=3,
                                          lid_unknown=2, days=30, seed=7)
        again = await phone.seed_history(chats=500, messages_per_chat=3, groups=20, contacts=100, lid_contacts=3,
                                         lid_unknown=2, days=30, seed=7)
    assert seeded["chats"] == again["chats"] and len(seeded["chats"]) == 500  # deterministic
    page = await _hooked(context, sim, "15551001")
    assert await page.evaluate("window.__atSync") == 500
    chats = await page.evaluate(GET_CHATS_JS)
    by_t = [c["id"]["_serialized"] for c in sorted(chats, key=lambda c: -c["t"])]
    assert by_t == seeded["chats"]
    ts = [c["t"] for c in sorted(chats, key=lambda c: -c["t"])]
    assert len(set(ts)) == 500 and ts[0] > time.time() - 3600 and ts[-1] > time.time() - 31 * 86400
    groups = [c for c in chats if c["isGroup"]]
    assert len(groups) == 20
    parts = [p["id"]["_serialized"] for p in groups[0]["groupMetadata"]["participants"]]
    assert "15551001@c.us" in parts and any(p.endswith("@lid") for p in parts)  # one lid stays: phone unknown
    assert sum(p.endswith("@c.us") for p in parts) == len(parts) - 1  # the known lid became its phone
    bad = [c for c in chats if not (c["lastMessage"] and c["lastMessage"]["id"] == c["loaded"][-1])]
    assert not bad, [(c["lastMessage"], c["loaded"], c["id"]) for c in bad[:2]]
    assert {c["id"]["server"] for c in chats} == {"c.us", "g.us", "lid"}
    assert any(c["isMuted"] for c in chats) and any(c["unreadCount"] for c in chats)
    assert any(c["archive"] for c in chats) and all(len(c["loaded"]) == 3 for c in chats)
    kinds = await page.evaluate("""() => {
      const out = {};
      for (const m of window.require('WAWebCollections').Msg.getModelsArray()) out[m.type] = (out[m.type] || 0) + 1;
      out.fromMe = window.require('WAWebCollections').Msg.getModelsArray().filter((m) => m.id.fromMe).length;
      return out;
    }""")
    assert kinds["chat"] > 0 and kinds["image"] > 0 and kinds["location"] > 0 and kinds["fromMe"] > 0
    contacts = await page.evaluate("window.require('WAWebCollections').Contact.getModelsArray().length")
    assert contacts >= seeded["contacts"]


async def test_load_earlier_and_media_of_history(sim: RunningSimulator, context: BrowserContext) -> None:
    """A chat of 130 messages holds the latest 50; fetchMessages({limit: 120}) loads the rest from the phone
    in pages of 50 (oldest first, no duplicates); a history picture downloads and decrypts."""
    async with AsyncPhoneClient(sim.url, "15551002") as phone:
        seeded = await phone.seed_history(chats=3, messages_per_chat=130, groups=1, contacts=2, lid_contacts=0,
                                          lid_unknown=0, seed=3)
    page = await _hooked(context, sim, "15551002")
    chat_id = seeded["chats"][1]
    held = await page.evaluate("(id) => window.require('WAWebCollections').Chat.get(id).msgs.length", chat_id)
    assert held == 50
    got = await page.evaluate(FETCH_JS, {"chatId": chat_id, "limit": 120})
    assert got["held"] == 130 and len(got["ids"]) == 120 and len(set(got["ids"])) == 120
    all_ids = await page.evaluate("""(id) => {
      const ms = window.require('WAWebCollections').Chat.get(id).msgs.getModelsArray();
      return { ids: ms.map((m) => m.id.id), ts: ms.map((m) => m.t) };
    }""", chat_id)
    assert all_ids["ts"] == sorted(all_ids["ts"]) and got["ids"] == all_ids["ids"][-120:]
    none = await page.evaluate("""async (id) => {
      const chat = window.require('WAWebCollections').Chat.get(id);
      return (await window.require('WAWebChatLoadMessages').loadEarlierMsgs({ chat })).length;
    }""", chat_id)
    assert none == 0
    media = await page.evaluate("""async () => {
      const m = window.require('WAWebCollections').Msg.getModelsArray().find((x) => x.type === 'image');
      const buf = await window.require('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt(
        { directPath: m.directPath, encFilehash: m.encFilehash, filehash: m.filehash, mediaKey: m.mediaKey, type: 'image' });
      return Array.from(new Uint8Array(buf).slice(1, 4));
    }""")
    assert bytes(media) == b"PNG"


async def test_exists_lid_mapping_and_profile_pic(sim: RunningSimulator, context: BrowserContext) -> None:
    """queryWidExists answers from the phones the simulator knows plus PUT /_sim/registered; a lid with a
    known phone maps both ways, one without stays without (never a number made from the lid)."""
    async with AsyncPhoneClient(sim.url, "15551003") as phone:
        await phone.seed_history(chats=6, messages_per_chat=2, groups=1, contacts=3, lid_contacts=1, lid_unknown=1,
                                 seed=11)
        assert await phone.set_registered(["4915112345678"]) == ["4915112345678"]
        with pytest.raises(PhoneError) as bad:
            await phone.set_registered(["12ab"])
        assert bad.value.status == 400
    page = await link_page(context, sim.url, "15551003")
    exists = await page.evaluate("""async (ids) => {
      const out = {};
      for (const id of ids) {
        const r = await window.require('WAWebQueryExistsJob').queryWidExists(window.require('WAWebWidFactory').createWid(id));
        out[id] = r ? r.wid._serialized : null;
      }
      return out;
    }""", ["4915112345678@c.us", "4915199999999@c.us", "15551003@c.us"])
    assert exists == {"4915112345678@c.us": "4915112345678@c.us", "4915199999999@c.us": None,
                      "15551003@c.us": "15551003@c.us"}
    lids = await page.evaluate("""() => window.require('WAWebCollections').Contact.getModelsArray()
      .filter((c) => c.id.isLid()).map((c) => [c.id._serialized, c.phoneNumber ? c.phoneNumber._serialized : null])""")
    known = [lid for lid, pn in lids if pn]
    unknown = [lid for lid, pn in lids if not pn]
    assert known and unknown
    k = await page.evaluate(LID_PN_JS, known[0])
    u = await page.evaluate(LID_PN_JS, unknown[0])
    assert k["lid"] == known[0] and k["pn"].endswith("@c.us")
    assert u["lid"] == unknown[0] and u.get("pn") is None  # no phone, and no number made from the lid
    back = await page.evaluate(LID_PN_JS, k["pn"])
    assert back == k
    contact = await page.evaluate(CONTACT_JS, known[0])
    assert contact["id"] == k["pn"] and contact["alt"] == k["pn"] and contact["blocked"] is False
    unknown_contact = await page.evaluate(CONTACT_JS, unknown[0])
    assert unknown_contact["id"] == unknown[0] and unknown_contact["alt"] is None
    pic = await page.evaluate("""async (id) => {
      const chat = window.require('WAWebCollections').Chat.get(id)
        || (await window.require('WAWebFindChatAction').findOrCreateLatestChat(window.require('WAWebWidFactory').createWid(id))).chat;
      const r = await window.require('WAWebContactProfilePicThumbBridge').requestProfilePicFromServer(chat);
      let missing = null;
      try { await window.require('WAWebContactProfilePicThumbBridge').requestProfilePicFromServer(
        window.require('WAWebWidFactory').createWid('4915199999999@c.us')); } catch (e) { missing = e.name; }
      return { eurl: r.eurl, missing };
    }""", k["pn"])
    assert pic["missing"] == "ServerStatusCodeError" and pic["eurl"].startswith(sim.url)
    async with httpx.AsyncClient() as http:
        resp = await http.get(pic["eurl"])
    assert resp.status_code == 200 and resp.content.startswith(b"\x89PNG")


async def test_reads_and_chatstates(sim: RunningSimulator, context: BrowserContext) -> None:
    """sendSeen sends the phone read receipts for exactly the unread messages it wrote; chat states are logged
    for the device's phone and the partner of a 1:1 chat."""
    page = await link_page(context, sim.url, "15551004")
    async with AsyncPhoneClient(sim.url, "15551005") as peer, AsyncPhoneClient(sim.url, "15551004") as me:
        first = await peer.send("15551004", "one")
        second = await peer.send("15551004", "two")
        await page.wait_for_function(
            "(window.require('WAWebCollections').Chat.get('15551005@c.us') || {}).unreadCount === 2")
        await page.evaluate("""async () => {
          const chat = window.require('WAWebCollections').Chat.get('15551005@c.us');
          window.require('WAWebStreamModel').Stream.markAvailable();
          await window.require('WAWebUpdateUnreadChatAction').sendSeen({ chat, threadId: undefined });
          window.require('WAWebStreamModel').Stream.markUnavailable();
          await window.require('WAWebUpdateUnreadChatAction').sendSeen({ chat, threadId: undefined });
          const S = window.require('WAWebChatStateBridge');
          const wid = window.require('WAWebWidFactory').createWid('15551005@c.us');
          await S.sendChatStateComposing(wid);
          await S.sendChatStateRecording(wid);
          await S.sendChatStatePaused(wid);
        }""")
        assert await page.evaluate("window.require('WAWebCollections').Chat.get('15551005@c.us').unreadCount") == 0
        for _ in range(100):
            states = await peer.chatstates()
            if len(states) == 3:
                break
            await asyncio.sleep(0.02)
        reads = await peer.reads()
        assert [(r["chat"], r["ids"], r["by"]) for r in reads] == [("15551005@c.us", [first, second], "15551004")]
        assert [s["state"] for s in states] == ["composing", "recording", "paused"]
        assert {s["chat"] for s in states} == {"15551005@c.us"}
        assert [s["state"] for s in await me.chatstates()] == ["composing", "recording", "paused"]
        assert await me.reads() == []


async def test_history_body_validated(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        bad = await http.post("/_phone/15551006/history", json={"chats": 2, "groups": 3})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_body"
        bad = await http.post("/_phone/15551006/history", json={"chats": -1})
        assert bad.status_code == 422
        bad = await http.post("/_phone/15551006/history", json={"nope": 1})
        assert bad.status_code == 422
        assert (await http.post("/_phone/12/history", json={})).status_code == 400
        bad = await http.post("/_phone/15551006/history", json={"chats": 5000, "messages_per_chat": 200})
        assert bad.status_code == 422  # more than 500,000 messages
    with PhoneClient(sim.url, "15551006") as phone:
        assert phone.set_registered(["15559990001", "15559990001"]) == ["15559990001"]
        assert phone.set_registered([]) == []


async def test_five_thousand_chats_sync_fast(sim: RunningSimulator, context: BrowserContext) -> None:
    """5,000 chats x 3 messages reach the page in a few seconds, and listing them stays cheap."""
    async with AsyncPhoneClient(sim.url, "15551007") as phone:
        await phone.seed_history(chats=5000, messages_per_chat=3, groups=100, contacts=2000, lid_contacts=20,
                                 lid_unknown=20, seed=5)
    start = time.monotonic()
    page = await _hooked(context, sim, "15551007")
    took = time.monotonic() - start
    assert await page.evaluate("window.__atSync") == 5000
    assert took < 8.0, took
    listing: Any = await page.evaluate("""() => {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) {
        const rows = window.require('WAWebCollections').Chat.getModelsArray().map((c) => [c.t, c.id._serialized, c]);
        rows.sort((a, b) => (b[0] - a[0]) || (a[1] < b[1] ? -1 : 1));
        rows.slice(0, 50).map(([, , c]) => ({ ...c.serialize(), title: c.formattedTitle, last: c.lastReceivedKey }));
      }
      return (performance.now() - t0) / 20;
    }""")
    assert listing < 30, listing
    await wait_state(page, "CONNECTED")


CODE_JS = """async (phone) => {
  const api = window.require('WAWebAltDeviceLinkingApi');
  api.setPairingType('ALT_DEVICE_LINKING');
  await api.initializeAltDeviceLinking();
  return api.startAltLinkingFlow(phone, true);
}"""


async def test_pairing_code_stays_unpaired_and_brings_history(context: BrowserContext) -> None:
    """With a live pairing code the page stays UNPAIRED (no QR rotation into UNPAIRED_IDLE, even when
    refreshQR is asked); entering the code links it and the history is there before hasSynced."""
    from wa_ray.simulator.wa_web.config import SimConfig

    with running_web_simulator(SimConfig(qr_first_ttl_s=0.4, qr_next_ttl_s=0.3, qr_max_refs=2)) as short:
        async with AsyncPhoneClient(short.url, "15551010") as phone:
            seeded = await phone.seed_history(chats=12, messages_per_chat=2, groups=2, seed=2)
            page = await context.new_page()
            await page.goto(short.url)
            await wait_state(page, "UNPAIRED")
            code = await page.evaluate(CODE_JS, "15551010")
            assert len(code) == 8
            await page.evaluate("window.require('WAWebCmd').Cmd.refreshQR()")
            states: list[str] = []
            for _ in range(12):  # well past the two refs' lifetimes
                states.append(await page.evaluate("window.require('WAWebSocketModel').Socket.state"))
                await page.wait_for_timeout(100)
            assert set(states) == {"UNPAIRED"}, states
            await page.evaluate("""window.require('WAWebSocketModel').Socket.on('change:hasSynced', () => {
              window.__atSync = window.require('WAWebCollections').Chat.getModelsArray().map((c) => c.id._serialized);
            })""")
            renewed = await page.evaluate(CODE_JS, "15551010")  # the library renews it every 180 s
            with pytest.raises(PhoneError) as replaced:
                await phone.link_with_code(code)
            assert replaced.value.status == 410 and renewed != code
            assert await page.evaluate("window.require('WAWebSocketModel').Socket.state") == "UNPAIRED"
            await phone.link_with_code(renewed)
            await wait_state(page, "CONNECTED")
            await page.wait_for_function("window.__atSync !== undefined")
            assert sorted(await page.evaluate("window.__atSync")) == sorted(seeded["chats"])


async def test_restore_gets_history_and_a_new_seed_replaces_it(sim: RunningSimulator, browser: Any,
                                                             context: BrowserContext) -> None:
    """A restored browser (saved storage) gets the history again; a reconnect of a page that holds it gets
    nothing twice; a new seed reaches a linked page at its next reconnect and replaces the old chats, while a
    message that arrived live stays."""
    async with AsyncPhoneClient(sim.url, "15551011") as phone, AsyncPhoneClient(sim.url, "15551012") as peer:
        first = await phone.seed_history(chats=10, messages_per_chat=2, groups=1, seed=1)
        page = await link_page(context, sim.url, "15551011")
        await page.wait_for_function("window.require('WAWebCollections').Chat.length === 10")
        saved = await context.storage_state(indexed_db=True)
        await page.close()
        restored = await browser.new_context(storage_state=saved)
        try:
            page = await restored.new_page()
            await page.goto(sim.url)
            await wait_state(page, "CONNECTED")
            await page.wait_for_function("window.require('WAWebCollections').Chat.length === 10")
            await peer.send("15551011", "live one")
            await page.wait_for_function("window.require('WAWebCollections').Chat.length === 11")
            frames_before = await page.evaluate("window.require('WAWebCollections').Msg.length")
            await phone.drop(0.3)
            await page.wait_for_function("window.require('WAWebSocketModel').Socket.state === 'TIMEOUT'")
            await wait_state(page, "CONNECTED")
            assert await page.evaluate("window.require('WAWebCollections').Msg.length") == frames_before

            second = await phone.seed_history(chats=4, messages_per_chat=1, groups=0, seed=2)
            await phone.drop(0.3)
            await page.wait_for_function("window.require('WAWebSocketModel').Socket.state === 'TIMEOUT'")
            await wait_state(page, "CONNECTED")
            await page.wait_for_function("window.require('WAWebCollections').Chat.length === 5")
            ids = await page.evaluate(
                "window.require('WAWebCollections').Chat.getModelsArray().map((c) => c.id._serialized)")
            assert sorted(ids) == sorted([*second["chats"], "15551012@c.us"])
            assert not set(first["chats"]) & set(ids)
        finally:
            await restored.close()


async def test_group_read_receipts_go_to_each_author(sim: RunningSimulator, context: BrowserContext) -> None:
    """sendSeen in a group: the author of the unread message gets the receipt, through its lid when the page
    knows the lid's phone (the seeded group's last message is by such a lid); the sync PhoneClient reads it."""
    with PhoneClient(sim.url, "15551020") as phone:
        seeded = phone.seed_history(chats=4, messages_per_chat=9, groups=1, contacts=2, lid_contacts=0,
                                    lid_unknown=0, seed=21)
    group = seeded["chats"][0]
    assert group.endswith("@g.us")
    page = await link_page(context, sim.url, "15551020")
    await page.wait_for_function("window.require('WAWebCollections').Chat.length === 4")
    got = await page.evaluate("""async (id) => {
      const chat = window.require('WAWebCollections').Chat.get(id);
      const last = chat.msgs.last();
      const unread = chat.unreadCount;
      await window.require('WAWebUpdateUnreadChatAction').sendSeen({ chat, threadId: undefined });
      const pn = window.require('WAWebLidMigrationUtils').toPn(last.author);
      return { unread, id: last.id.id, author: last.author._serialized, pn: pn && pn._serialized, after: chat.unreadCount };
    }""", group)
    assert got["unread"] == 1 and got["after"] == 0 and got["author"].endswith("@lid") and got["pn"]
    with PhoneClient(sim.url, got["pn"].split("@")[0]) as author:
        for _ in range(100):
            if author.reads():
                break
            await asyncio.sleep(0.02)
        assert [(r["chat"], r["ids"]) for r in author.reads()] == [(group, [got["id"]])]
        assert author.chatstates() == []
