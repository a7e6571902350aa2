"""The simulator's heavy page (`page_cost: "heavy"`): what WhatsApp Web spends per message and the light page
does not (per-device encryption, IndexedDB writes, a synchronous re-render), switched on for pages already
open, with sends still in order and each acked once."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext

from wa_ray.simulator.wa_web.testing import AsyncPhoneClient, RunningSimulator, link_page

from tests.simulator.test_wa_web import SEND_JS

# Several sends started in the same task, as whatsapp-web.js does when a caller does not await each.
SEND_MANY_JS = """async ({to, bodies}) => {
  const WidFactory = window.require('WAWebWidFactory');
  const chatWid = WidFactory.createWid(to);
  const { chat } = await window.require('WAWebFindChatAction').findOrCreateLatestChat(chatWid);
  const MsgKey = window.require('WAWebMsgKey');
  const from = window.require('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const results = bodies.map(async (body) => {
    const key = new MsgKey({from, to: chat.id, id: await MsgKey.newId(), participant: undefined, selfDir: 'out'});
    return key;
  });
  const keys = await Promise.all(results);
  const sends = keys.map((key, i) => window.require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {
    id: key, ack: 0, body: bodies[i], from, to: chat.id, local: true, self: 'out',
    t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat'})[1]);
  return (await Promise.all(sends)).map((r) => r.messageSendResult);
}"""

STORED_JS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open('model-storage', 1);
  req.onupgradeneeded = () => { req.result.createObjectStore('message', { keyPath: 'id' }); };
  req.onsuccess = () => {
    const all = req.result.transaction('message').objectStore('message').getAll();
    all.onsuccess = () => resolve(all.result.map((r) => [r.body, r.ack]));
    all.onerror = () => reject(all.error);
  };
  req.onerror = () => reject(req.error);
})"""


async def test_heavy_page_switches_on_while_open_and_keeps_sends_in_order(
        sim: RunningSimulator, context: BrowserContext) -> None:
    page = await link_page(context, sim.url, "15550301")
    async with AsyncPhoneClient(sim.url, "15550302") as recipient, httpx.AsyncClient(base_url=sim.url) as http:
        await recipient.set_config(delivered_ms=20, read_ms=40)
        light = await page.evaluate(SEND_JS, {"to": "15550302@c.us", "body": "light"})
        assert light["result"]["messageSendResult"] == "OK"
        assert await page.evaluate(STORED_JS) == []  # the light page writes no message to IndexedDB

        response = await http.put("/_sim/config", json={"page_cost": "heavy", "heavy_devices": 4})
        assert response.status_code == 200 and response.json()["page_cost"] == "heavy"
        bodies = [f"heavy {i}" for i in range(8)]
        try:
            assert await page.evaluate(SEND_MANY_JS, {"to": "15550302@c.us", "bodies": bodies}) == ["OK"] * 8
            inbox = [m["body"] for m in await recipient.inbox()]
            assert inbox == ["light", *bodies]  # in order, each once
            await page.wait_for_function(f"""async () => {{
              const rows = await ({STORED_JS})();
              return rows.length === {len(bodies)} && rows.every(([, ack]) => ack === 3);
            }}""", timeout=10_000)  # written when sent, then each ack read, changed and written back

            await recipient.send("15550301", "inbound while heavy")
            await page.wait_for_function(f"""async () => (await ({STORED_JS})()).some(([b]) => b === 'inbound while heavy')""",
                                         timeout=10_000)
        finally:
            assert (await http.put("/_sim/config", json={"page_cost": "light"})).status_code == 200


async def test_heavy_config_is_validated(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        for body in ({"page_cost": "medium"}, {"heavy_devices": 0}, {"heavy_devices": 100}):
            response = await http.put("/_sim/config", json=body)
            assert response.status_code == 422, (body, response.text)
        assert (await http.get("/_sim/config")).json()["page_cost"] == "light"
