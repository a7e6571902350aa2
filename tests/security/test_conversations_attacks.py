"""Attacks on the live conversation routes (issue 14), over real HTTP against a session linked to the
simulator with a seeded history: another workspace's key, a read-only key writing, malformed and oversized
cursors, chat ids and numbers, script-like text aimed at the page, limit bounds, and bodies that do not
fit. Every refusal is a 4xx in the error shape, never a 500, and a 422 never echoes what it rejected."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY_ID
from tests.conversations.helpers import Seeded, all_chats, history_number, seed_and_link
from wa_ray.signing import HmacAuth

WS, SID, NUMBER, SEED = "conv-attack", "ca1", "15557150", 11
HISTORY = {"chats": 30, "messages_per_chat": 10, "groups": 1, "contacts": 10, "lid_contacts": 1,
           "lid_unknown": 1, "days": 10, "seed": SEED}
ROUTES: list[tuple[str, str]] = [
    ("GET", "/chats"), ("GET", "/chats/{chat}/messages"), ("GET", "/contacts"), ("GET", "/contacts/{chat}"),
    ("GET", "/contacts/{number}/exists"), ("POST", "/chats/{chat}/read"), ("POST", "/chats/{chat}/presence"),
    ("GET", "/groups"), ("GET", "/groups/{group}/participants")]


@pytest.fixture(scope="module")
async def live(service, web_sim, admin_secret: str) -> AsyncIterator[Seeded]:
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(ADMIN_KEY_ID, admin_secret),
                                 timeout=30) as api, httpx.AsyncClient(base_url=web_sim.url, timeout=30) as phone:
        yield await seed_and_link(api, phone, service.base_url, WS, SID, NUMBER, HISTORY)


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(response: httpx.Response, status: int | tuple[int, ...], *, not_echoed: str | None = None) -> dict:
    allowed = (status,) if isinstance(status, int) else status
    assert response.status_code in allowed, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    if not_echoed:
        assert not_echoed not in response.text
    return body["error"]


def path(live: Seeded, template: str, ws: str | None = None) -> str:
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    group = next(c for c in live.chats if c.endswith("@g.us"))
    filled = template.format(chat=chat, number=chat.split("@")[0], group=group)
    return f"/v1/workspaces/{ws or live.ws}/sessions/{live.sid}{filled}"


async def call(client: httpx.AsyncClient, method: str, url: str) -> httpx.Response:
    if method == "POST":
        return await client.post(url, json={"state": "typing"} if url.endswith("/presence") else None)
    return await client.get(url)


async def test_another_workspace_key_gets_404_everywhere(live: Seeded, make_key, client_for, phone_api) -> None:
    other_ws = f"ca-other-{secrets.token_hex(3)}"
    other = client_for(await make_key("workspace", other_ws, rate_per_s=0))
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    since = time.time() - 1
    for method, template in ROUTES:
        # the victim's workspace in the path: the workspace itself is hidden
        assert refused(await call(other, method, path(live, template)), 404)["code"] == "not_found"
        # its own workspace with the victim's session id: that session does not exist for it
        assert refused(await call(other, method, path(live, template, other_ws)), 404)["code"] == "session_not_found"
    states = (await phone_api.get(f"/_phone/{chat.split('@')[0]}/chatstates")).json()["states"]
    assert not [s for s in states if s["ts"] >= since]  # no refused presence reached the phone


async def test_read_key_reads_but_never_writes(live: Seeded, make_key, client_for, phone_api) -> None:
    reader = client_for(await make_key("read", live.ws, rate_per_s=0))
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    since = time.time() - 1
    for method, template in ROUTES:
        response = await call(reader, method, path(live, template))
        if method == "GET":
            assert response.status_code == 200, (template, response.text[:300])
        else:
            assert refused(response, 403)["code"] == "forbidden"
    partner = chat.split("@")[0]
    assert not [s for s in (await phone_api.get(f"/_phone/{partner}/chatstates")).json()["states"] if s["ts"] >= since]
    assert not [r for r in (await phone_api.get(f"/_phone/{partner}/reads")).json()["reads"] if r["ts"] >= since]


BAD_CURSORS = [
    "!!!notbase64", "a" * 401, "====", b64(b"not json"), b64(b"\xff\xfe"), b64([1]), b64(["x", "y"]),
    b64([1.5, "15551234567@c.us"]), b64([-1, "15551234567@c.us"]), b64([2**60, "15551234567@c.us"]),
    b64([True, "15551234567@c.us"]), b64([1, "<script>alert(1)</script>@c.us"]), b64({"t": 1, "id": "x"}),
    b64("15551234567@c.us" + "0" * 200), b64([1, "15551234567@c.us", 3]), b64("[" * 150 + "]" * 150),
    b64(None), b64([1, None]), b64([1, "15551234567@c.us\n"]), b64("15551234567@c.us\n"),
]


async def test_malformed_and_oversized_cursors_are_422(api, live: Seeded) -> None:
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    for cursor in BAD_CURSORS:
        for url, name in ((f"{live.base}/chats", "cursor"), (f"{live.base}/groups", "cursor"),
                          (f"{live.base}/contacts", "cursor"), (f"{live.base}/chats/{chat}/messages", "before"),
                          (f"{live.base}/chats/{chat}/messages", "after")):
            error = refused(await api.get(url, params={name: cursor}), 422, not_echoed=cursor if len(cursor) > 3 else None)
            assert error["code"] in ("invalid_cursor", "validation_error"), error
    # a well-formed message id the page does not know, one of another chat, and both directions at once
    other = next(c for c in live.chats if c.endswith("@c.us") and c != chat)
    for cursor in (b64(f"false_{chat}_3A0000000000000000"), b64(f"false_{other}_3A0000000000000000")):
        error = refused(await api.get(f"{live.base}/chats/{chat}/messages", params={"before": cursor}), 422)
        assert error["code"] == "invalid_cursor"
    page = (await api.get(f"{live.base}/chats/{chat}/messages", params={"limit": 2})).json()
    both = await api.get(f"{live.base}/chats/{chat}/messages",
                         params={"before": page["before_cursor"], "after": page["after_cursor"]})
    assert refused(both, 422)["code"] == "invalid_cursor"


BAD_CHAT_IDS = [
    "abc", "123@c.us", "0123456789@c.us", "15551234567@s.whatsapp.net", "15551234567@c.us.evil",
    "<script>alert(1)</script>@c.us", "15551234567@c.us');window.__waray=null;('", "${window.__waray}@c.us",
    "1" * 5000 + "@c.us", "١٢٣٤٥٦٧٨@c.us", "15551234567@c.us%0A", "15551234567@g.us@c.us", "@c.us", "15551234567",
    "status@broadcast", "123456789@newsletter", "%00", "15551234567@lid%0a",
]


async def test_malformed_chat_group_contact_ids_are_refused(api, live: Seeded) -> None:
    for bad in BAD_CHAT_IDS:
        for method, url in (("GET", f"{live.base}/chats/{{}}/messages"), ("POST", f"{live.base}/chats/{{}}/read"),
                            ("POST", f"{live.base}/chats/{{}}/presence"), ("GET", f"{live.base}/contacts/{{}}"),
                            ("GET", f"{live.base}/groups/{{}}/participants")):
            response = await call(api, method, url.format(bad))
            # 422 for an id that is not a WhatsApp id; 404 when the text cannot even be one path segment
            error = refused(response, (422, 404), not_echoed=bad if len(bad) > 5 else None)
            assert error["code"] in ("invalid_chat_id", "invalid_contact_id", "invalid_group_id", "validation_error",
                                     "not_found"), error
    # a person is not a group, a group not a contact
    person = next(c for c in live.chats if c.endswith("@c.us"))
    group = next(c for c in live.chats if c.endswith("@g.us"))
    for url in (f"{live.base}/groups/{person}/participants", f"{live.base}/contacts/{group}"):
        assert refused(await api.get(url), 422)["code"] in ("validation_error", "invalid_group_id", "invalid_contact_id")


async def test_script_like_search_text_is_only_ever_data(api, live: Seeded) -> None:
    """`q` is free text and does reach the page: as a JSON argument, never as source. Text that would break
    out of a string literal, template or function call finds nothing, and the bridge still works after it."""
    attacks = ["');window.__waray=null;('", "\"];window.__waray.chats=null;//", "${window.__waray=null}",
               "`+(window.__waray=null)+`", "</script><script>window.__waray=null</script>", "__proto__",
               "constructor", "\\u0027);window.__waray=null;//", "x\u2028window.__waray=null"]
    for text in attacks:
        got = await api.get(f"{live.base}/contacts", params={"q": text})
        assert got.status_code == 200, got.text[:300]
        assert got.json() == {"items": [], "next_cursor": None}
    number = history_number(SEED, 2)
    found = (await api.get(f"{live.base}/contacts", params={"q": number})).json()["items"]
    assert [c["id"] for c in found] == [f"{number}@c.us"]  # the page's functions are intact
    assert len(await all_chats(api, live.base)) == len(live.chats)


async def test_limit_bounds(api, live: Seeded) -> None:
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    for url in (f"{live.base}/chats", f"{live.base}/contacts", f"{live.base}/groups", f"{live.base}/chats/{chat}/messages"):
        for bad in ("0", "-1", "101", "abc", "1e3", "99999999999999999999999", "1.5", ""):
            refused(await api.get(url, params={"limit": bad}), 422)
        assert (await api.get(url, params={"limit": "100"})).status_code == 200
        one = await api.get(url, params={"limit": "1"})
        assert one.status_code == 200 and len(one.json()["items"]) == 1
    refused(await api.get(f"{live.base}/contacts", params={"q": "x" * 101}), 422)


async def test_bad_numbers_and_bodies(api, raw, live: Seeded) -> None:
    for bad in ("+15551234567", "0123456", "1234", "1" * 21, "abc", "15551234567@c.us", "1555 1234567",
                "15551234567%0A"):
        error = refused(await api.get(f"{live.base}/contacts/{bad}/exists"), (422, 404), not_echoed=bad)
        assert error["code"] in ("invalid_number", "validation_error", "invalid_contact_id", "not_found"), error
    chat = next(c for c in live.chats if c.endswith("@c.us"))
    presence = f"{live.base}/chats/{chat}/presence"
    for body in ({"state": "composing"}, {"state": "typing", "extra": 1}, {}, {"state": None}, [1], "typing"):
        refused(await api.post(presence, json=body), 422)
    refused(await api.post(presence, content=b"{not json", headers={"content-type": "application/json"}), 400)
    refused(await api.post(presence, content=b"{\"state\": \"" + b"a" * 70_000 + b"\"}",
                           headers={"content-type": "application/json"}), 413)
    # unsigned: nothing is read or written
    refused(await raw.get(f"{live.base}/chats"), 401)
    refused(await raw.post(f"{live.base}/chats/{chat}/read"), 401)
