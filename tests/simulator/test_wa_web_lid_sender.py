"""A phone writing from its @lid (`POST /_phone/{n}/messages` with `as_lid`), read through real Chromium the
way whatsapp-web.js 1.34.7 and our bridge read it: the message's `from` (1:1) or `author` (group) is the lid;
WAWebApiContact.getPhoneNumber / WAWebLidMigrationUtils.toPn answer the phone only when the stanza named it
(`pn_known`), never a number made from the lid; a page send to the lid reaches the phone behind it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext

from wa_ray.simulator.wa_web.state import lid_for
from wa_ray.simulator.wa_web.testing import (
    AsyncPhoneClient,
    RunningSimulator,
    link_page,
)

ME = "15551601"
KNOWN = "15551602"
UNKNOWN = "15551603"
GROUP = "120363015551600@g.us"

# What the page holds of one received message and what it knows of its sender's lid.
PAGE_VIEW_JS = """(body) => {
  const C = window.require('WAWebCollections');
  const m = C.Msg.getModelsArray().find((x) => x.body === body);
  if (!m) return null;
  const sender = m.author || m.from;
  const pn = window.require('WAWebApiContact').getPhoneNumber(sender);
  const toPn = window.require('WAWebLidMigrationUtils').toPn(sender);
  const contact = C.Contact.get(sender);
  return { from: m.from._serialized, author: m.author ? m.author._serialized : null, chat: m.id.remote._serialized,
    pn: pn ? pn._serialized : null, toPn: toPn ? toPn._serialized : null,
    contactPn: contact && contact.phoneNumber ? contact.phoneNumber._serialized : null,
    chatExists: !!C.Chat.get(m.id.remote) };
}"""

# A plain text send as whatsapp-web.js's sendMessage does it (a lid chat sends from the page's own lid).
SEND_JS = """async ({to, body}) => {
  const chatWid = window.require('WAWebWidFactory').createWid(to);
  const chat = window.require('WAWebCollections').Chat.get(chatWid)
    || (await window.require('WAWebFindChatAction').findOrCreateLatestChat(chatWid)).chat;
  const { getMaybeMeLidUser, getMaybeMePnUser } = window.require('WAWebUserPrefsMeUser');
  const from = chat.id.isLid() ? getMaybeMeLidUser() : getMaybeMePnUser();
  const MsgKey = window.require('WAWebMsgKey');
  const key = new MsgKey({from, to: chat.id, id: await MsgKey.newId(), participant: undefined, selfDir: 'out'});
  const [, result] = window.require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat,
    { id: key, ack: 0, body, from, to: chat.id, local: true, self: 'out', t: Math.floor(Date.now() / 1000),
      isNewMsg: true, type: 'chat' });
  return { id: key.id, result: (await result).messageSendResult };
}"""


async def _view(page: Any, body: str) -> dict[str, Any]:
    await page.wait_for_function(f"(body) => ({PAGE_VIEW_JS})(body) !== null", arg=body, timeout=10_000)
    view: dict[str, Any] = await page.evaluate(PAGE_VIEW_JS, body)
    return view


async def test_lid_sender_known_unknown_group_and_reply(sim: RunningSimulator, context: BrowserContext) -> None:
    page = await link_page(context, sim.url, ME)
    known_lid, unknown_lid = lid_for(KNOWN), lid_for(UNKNOWN)
    async with AsyncPhoneClient(sim.url, KNOWN) as known, AsyncPhoneClient(sim.url, UNKNOWN) as unknown:
        await known.send(ME, "from a known lid", as_lid=True)
        await unknown.send(ME, "from an unknown lid", as_lid=True, pn_known=False)
        await known.send(ME, "group, known lid", GROUP, as_lid=True)
        await unknown.send(ME, "group, unknown lid", GROUP, as_lid=True, pn_known=False)
        await unknown.send(ME, "plain phone")  # without as_lid nothing changes

        k = await _view(page, "from a known lid")
        assert k == {"from": known_lid, "author": None, "chat": known_lid, "pn": f"{KNOWN}@c.us",
                     "toPn": f"{KNOWN}@c.us", "contactPn": f"{KNOWN}@c.us", "chatExists": True}
        u = await _view(page, "from an unknown lid")
        assert u == {"from": unknown_lid, "author": None, "chat": unknown_lid, "pn": None, "toPn": None,
                     "contactPn": None, "chatExists": True}
        gk = await _view(page, "group, known lid")
        assert (gk["from"], gk["author"], gk["pn"], gk["toPn"]) == (GROUP, known_lid, f"{KNOWN}@c.us", f"{KNOWN}@c.us")
        gu = await _view(page, "group, unknown lid")
        assert (gu["from"], gu["author"], gu["pn"], gu["toPn"]) == (GROUP, unknown_lid, None, None)
        plain = await _view(page, "plain phone")
        assert (plain["from"], plain["pn"]) == (f"{UNKNOWN}@c.us", f"{UNKNOWN}@c.us")
        # the unknown lid's page still cannot resolve it: learning a phone from a plain message is not a mapping
        assert (await _view(page, "from an unknown lid"))["pn"] is None

        # replies to each lid reach the phone behind it (the server knows every lid, whatever the page knows)
        for phone, lid in ((known, known_lid), (unknown, unknown_lid)):
            sent = await page.evaluate(SEND_JS, {"to": lid, "body": f"reply to {lid}"})
            assert sent["result"] == "OK"
            inbox = [m for m in await phone.inbox() if m["id"] == sent["id"]]
            assert [(m["from"], m["to"], m["body"]) for m in inbox] == [(ME, phone.number, f"reply to {lid}")]
        # a lid no phone has is refused by the server (ack -1), not delivered somewhere
        stray = await page.evaluate(SEND_JS, {"to": "99999999999999@lid", "body": "nobody"})
        assert stray["result"] == "ERROR"


async def test_as_lid_body_validated(sim: RunningSimulator) -> None:
    """pn_known means nothing without as_lid: 422, and nothing is sent."""
    async with httpx.AsyncClient(base_url=sim.url) as http:
        before = len((await http.get(f"/_phone/{ME}/inbox")).json()["messages"])
        bad = await http.post(f"/_phone/{KNOWN}/messages", json={"to": ME, "body": "x", "pn_known": False})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_body"
        wrong = await http.post(f"/_phone/{KNOWN}/messages", json={"to": ME, "body": "x", "as_lid": "yes please"})
        assert wrong.status_code == 422
        assert len((await http.get(f"/_phone/{ME}/inbox")).json()["messages"]) == before
