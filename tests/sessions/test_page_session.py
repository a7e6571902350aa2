"""sessions/ alone (no Ray): the bridge on a real Chromium page against the simulator, and the auth
state round trip through Playwright's storage_state(indexed_db=True), encrypted on the way."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from wa_ray.crypto import MasterKey
from wa_ray.sessions.page import PageSession
from wa_ray.storage.auth_store import FileAuthStore
from wa_ray.config import CHROMIUM_FLAGS, default_chromium


class Signals:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        self.seen.append((kind, payload))

    async def wait(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        for _ in range(int(timeout / 0.02)):
            for k, p in self.seen:
                if k == kind:
                    return p
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{kind} not signalled; saw {[k for k, _ in self.seen]}")


@pytest.fixture
async def browser():
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=default_chromium(), args=list(CHROMIUM_FLAGS))
        yield b
        await b.close()


async def test_linked_state_round_trips_encrypted_and_reconnects_without_qr(browser, web_sim, tmp_path) -> None:
    first = Signals()
    page = PageSession(browser, web_sim.url + "/", first)
    await page.open(None)
    qr = (await first.wait("qr"))["qr"]
    async with httpx.AsyncClient(base_url=web_sim.url) as phone:
        assert (await phone.post("/_phone/15552001/scan", json={"qr": qr})).status_code == 200
    ready = await first.wait("ready")
    assert ready["me"]["number"] == "15552001"

    store = FileAuthStore(tmp_path, [MasterKey(os.urandom(32))])
    state = await page.storage_state()
    assert b"indexedDB" in state, "IndexedDB (the device credentials) is part of the saved state"
    await store.save("acme", "s1", state)
    blob_path = tmp_path / "sessions" / "acme" / "s1" / "auth.bin"
    assert oct(blob_path.stat().st_mode & 0o777) == "0o600"
    assert oct(blob_path.parent.stat().st_mode & 0o777) == "0o700"
    assert b"15552001" not in blob_path.read_bytes(), "encrypted at rest"
    await page.close()

    restored = Signals()
    again = PageSession(browser, web_sim.url + "/", restored)
    await again.open(await store.load("acme", "s1"))
    assert (await restored.wait("ready"))["me"]["number"] == "15552001"
    assert not [k for k, _ in restored.seen if k == "qr"], "restored without a QR"
    await again.close()


async def test_ids_never_reach_a_path(tmp_path) -> None:
    store = FileAuthStore(tmp_path, [MasterKey(os.urandom(32))])
    for bad in ("../etc", "a/b", "A", "", "x" * 65):
        with pytest.raises(ValueError):
            await store.save(bad, "s1", b"{}")


SEED_JS = """async () => {
  localStorage.setItem('plain', 'v1');
  localStorage.setItem('json', JSON.stringify({a: [1, 2]}));
  const open = indexedDB.open('store-kinds', 3);
  open.onupgradeneeded = () => {
    const db = open.result;
    const inline = db.createObjectStore('inline', {keyPath: 'id'});
    inline.createIndex('by_kind', 'kind', {unique: false});
    db.createObjectStore('outofline');
    db.createObjectStore('counter', {autoIncrement: true});
  };
  const db = await new Promise((ok, ko) => { open.onsuccess = () => ok(open.result); open.onerror = () => ko(open.error); });
  const tx = db.transaction(['inline', 'outofline', 'counter'], 'readwrite');
  const shared = {n: 1};
  tx.objectStore('inline').put({id: 'k1', kind: 'keys', pub: new Uint8Array([0, 1, 2, 254, 255]).buffer,
                                 when: new Date(1700000000000), nested: {deep: [1, 'two', null, -0]}});
  tx.objectStore('inline').put({id: 'k2', kind: 'keys', arr: new Int32Array([-1, 2, 3]), map: new Map([['a', 1]]),
                                 set: new Set(['x']), big: 12345678901234567890n, twice: [shared, shared]});
  tx.objectStore('outofline').put('a string', 'str-key');
  tx.objectStore('outofline').put({plain: true}, ['array', 'key']);
  tx.objectStore('outofline').put(new Uint8Array([9, 8, 7]), new Date(1600000000000));
  tx.objectStore('counter').add({first: 1});
  tx.objectStore('counter').add({second: 2});
  await new Promise((ok, ko) => { tx.oncomplete = ok; tx.onerror = () => ko(tx.error); });
  db.close();
}"""


async def test_saved_state_restored_in_the_sessions_own_page_equals_playwrights_restore(browser, web_sim) -> None:
    """PageSession restores saved state into its own page (not through new_context(storage_state=...),
    which costs a page of its own per context). Whatever the app stored, of every kind Playwright's
    storage_state encodes, must come back as Playwright's own restore brings it back."""
    origin = web_sim.url
    seed_ctx = await browser.new_context()
    seed = await seed_ctx.new_page()
    await seed.route("**/*", lambda route: route.fulfill(body="<html></html>", content_type="text/html"))
    await seed.goto(origin + "/seed")
    await seed.evaluate(SEED_JS)
    await seed_ctx.add_cookies([{"name": "c1", "value": "cookie", "url": origin}])
    saved = await seed_ctx.storage_state(indexed_db=True)
    await seed_ctx.close()
    assert any(r.get("valueEncoded") for o in saved["origins"] for db in o["indexedDB"]
               for st in db["stores"] for r in st["records"]), "the seed has values Playwright must encode"

    theirs_ctx = await browser.new_context(storage_state=saved)
    theirs = await theirs_ctx.storage_state(indexed_db=True)
    await theirs_ctx.close()

    import orjson

    page = PageSession(browser, origin + "/", None)
    await page.prepare()
    await page._restore(saved)
    ours = orjson.loads(await page.storage_state())
    await page.close()

    def canonical(state: dict) -> dict:
        for o in state["origins"]:
            o["localStorage"].sort(key=lambda kv: kv["name"])
            for db in o["indexedDB"]:
                db["stores"].sort(key=lambda s: s["name"])
        return state

    assert canonical(ours) == canonical(theirs)
    assert canonical(ours)["origins"] == canonical(saved)["origins"]
    assert [c["name"] for c in ours["cookies"]] == ["c1"]
