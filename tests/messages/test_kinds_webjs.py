"""Every kind a WhatsApp Web session sends, through the public API to the phone's inbox.

The service sends through the real page bridge into the simulator's page, whose modules mirror what
whatsapp-web.js 1.34.7 reads on web.whatsapp.com; the phone's inbox shows what arrived (kind, caption, file
name, mimetype, size and sha256 of the uploaded bytes, location, vCards, quoted id, reactions, poll). Media
comes from a loopback file server this module owns, fetched through the egress guard.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from ray.util.state import list_actors
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import eventually, inbox, put_pacing, wait_status
from wa_ray.simulator.cloud_api.testing import serve_in_thread

DONE = frozenset({"sent", "delivered", "read"})
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 8
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 200
OGG = b"OggS\x00\x02" + b"\x00" * 200
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
FILES = {"photo.png": (PNG, "image/png"), "invoice.pdf": (PDF, "application/pdf"), "clip.mp4": (MP4, "video/mp4"),
         "song.mp3": (MP3, "audio/mpeg"), "note.ogg": (OGG, "audio/ogg"), "smile.webp": (WEBP, "image/webp")}
BIG = 16 * 1024 * 1024 - 4096  # a video just under the kind's 16 MB limit
BIG_CHUNK = bytes(range(256)) * 256  # 64 KB


@pytest.fixture(scope="module")
def media_server() -> Iterator[str]:
    async def file(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "big.mp4":
            async def body() -> AsyncIterator[bytes]:
                yield MP4[:32]
                sent = 32
                while sent < BIG:
                    chunk = BIG_CHUNK[:BIG - sent]
                    sent += len(chunk)
                    yield chunk
            return StreamingResponse(body(), media_type="video/mp4", headers={"content-length": str(BIG)})
        if name not in FILES:
            return Response(status_code=404)
        data, mimetype = FILES[name]
        return Response(data, media_type=mimetype)

    with serve_in_thread(Starlette(routes=[Route("/m/{name}", file)])) as served:
        yield served.url + "/m/"


def big_sha256() -> str:
    digest, sent = hashlib.sha256(MP4[:32]), 32
    while sent < BIG:
        chunk = BIG_CHUNK[:BIG - sent]
        digest.update(chunk)
        sent += len(chunk)
    return digest.hexdigest()


async def accept(api: httpx.AsyncClient, ws: str, body: dict) -> str:
    response = await api.post(f"/v1/workspaces/{ws}/messages", json=body)
    assert response.status_code == 202, response.text
    return response.json()["message_id"]


def key_of(wa_message_id: str) -> str:
    return wa_message_id.rsplit("_", 1)[1]


async def delivered_entry(api, phone_api, ws: str, mid: str, to: str) -> dict:
    done = await wait_status(api, ws, mid, DONE | {"failed"})
    assert done["status"] in DONE, done
    key = key_of(done["wa_message_id"])

    async def found():
        return [m for m in await inbox(phone_api, to) if m["id"] == key]
    (entry,) = await eventually(found)
    return entry


async def linked(api, phone_api, service, ws: str, sid: str, phone: str) -> None:
    await put_pacing(api, ws, enabled=False)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, sid, phone)


async def test_every_kind_reaches_the_phone_with_its_content(api, phone_api, service, media_server) -> None:
    ws, phone, to = "kinds-web-all", "15552410001", "15552410002"
    await linked(api, phone_api, service, ws, "k1", phone)
    m = media_server
    cases = [
        ({"type": "text", "text": "plain https://example.com/a", "preview_url": False},
         {"kind": "text", "body": "plain https://example.com/a", "link_preview": None}),
        ({"type": "text", "text": "see https://example.com/page", "preview_url": True},
         {"kind": "text", "link_preview": {"url": "https://example.com/page", "matched": "https://example.com/page"}}),
        ({"type": "image", "media": {"url": m + "photo.png"}, "caption": "the photo"},
         {"kind": "image", "type": "image", "caption": "the photo", "media": ("image/png", PNG, None)}),
        ({"type": "video", "media": {"url": m + "clip.mp4"}, "caption": "a clip"},
         {"kind": "video", "caption": "a clip", "media": ("video/mp4", MP4, None)}),
        ({"type": "audio", "media": {"url": m + "song.mp3"}},
         {"kind": "audio", "type": "audio", "media": ("audio/mpeg", MP3, None)}),
        ({"type": "voice", "media": {"url": m + "note.ogg"}},
         {"kind": "voice", "type": "ptt", "media": ("audio/ogg", OGG, None)}),
        ({"type": "document", "media": {"url": m + "invoice.pdf"}, "caption": "your invoice",
          "filename": "invoice-42.pdf"},
         {"kind": "document", "caption": "your invoice", "media": ("application/pdf", PDF, "invoice-42.pdf")}),
        ({"type": "sticker", "media": {"url": m + "smile.webp"}},
         {"kind": "sticker", "type": "sticker", "media": ("image/webp", WEBP, None)}),
        ({"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Office", "address": "Main St 1"},
         {"kind": "location", "location": {"latitude": 52.52, "longitude": 13.405, "description": "Office\nMain St 1"}}),
        ({"type": "poll", "name": "Lunch?", "options": ["pizza", "sushi", "salad"], "allow_multiple": False},
         {"kind": "poll", "poll": {"name": "Lunch?", "options": ["pizza", "sushi", "salad"], "selectable_count": 1}}),
    ]
    sent = [(await accept(api, ws, {"to": to, **body}), expected) for body, expected in cases]
    for mid, expected in sent:
        entry = await delivered_entry(api, phone_api, ws, mid, to)
        media = expected.pop("media", None)
        for field, value in expected.items():
            assert entry[field] == value, (field, entry)
        if media is not None:
            mimetype, data, filename = media
            assert entry["media"]["mimetype"] == mimetype
            assert (entry["media"]["size"], entry["media"]["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
            if filename:
                assert entry["media"]["filename"] == filename


async def test_contacts_arrive_as_vcards(api, phone_api, service) -> None:
    ws, phone, to = "kinds-web-vcard", "15552410011", "15552410012"
    await linked(api, phone_api, service, ws, "k1", phone)
    one = {"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"},
           "phones": [{"phone": "+44 20 7946 0000", "type": "WORK", "wa_id": "442079460000"}],
           "emails": [{"email": "ada@example.com"}], "org": {"company": "Engines; Ltd"}}
    mid = await accept(api, ws, {"to": to, "type": "contacts", "contacts": [one]})
    entry = await delivered_entry(api, phone_api, ws, mid, to)
    assert (entry["kind"], entry["type"], entry["vcard_name"]) == ("contacts", "vcard", "Ada Lovelace")
    (card,) = entry["vcards"]
    lines = card.split("\n")
    assert lines[:2] == ["BEGIN:VCARD", "VERSION:3.0"] and lines[-1] == "END:VCARD"
    assert "N:Lovelace;Ada;;;" in lines and "FN:Ada Lovelace" in lines and "ORG:Engines\\; Ltd" in lines
    assert "TEL;type=WORK;waid=442079460000:+44 20 7946 0000" in lines and "EMAIL:ada@example.com" in lines

    two = {"name": {"formatted_name": "Bob\nEND:VCARD"}, "phones": [{"phone": "+1 555 0100"}]}
    mid = await accept(api, ws, {"to": to, "type": "contacts", "contacts": [one, two]})
    entry = await delivered_entry(api, phone_api, ws, mid, to)
    assert (entry["kind"], entry["type"], len(entry["vcards"])) == ("contacts", "multi_vcard", 2)
    assert "FN:Bob\\nEND:VCARD" in entry["vcards"][1].split("\n")  # a name never ends its card


async def test_replies_quote_and_reactions_land_on_the_right_message(api, phone_api, service) -> None:
    ws, phone, to = "kinds-web-reply", "15552410021", "15552410022"
    await put_pacing(api, ws, enabled=False)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "k1", phone)
        first = await accept(api, ws, {"to": to, "text": "first"})
        second = await accept(api, ws, {"to": to, "text": "second"})
        first_entry = await delivered_entry(api, phone_api, ws, first, to)
        second_entry = await delivered_entry(api, phone_api, ws, second, to)

        # a reply to our own message (by our id), and one to an inbound message (by its WhatsApp id)
        reply = await accept(api, ws, {"to": to, "text": "about the first", "reply_to": first})
        assert (await delivered_entry(api, phone_api, ws, reply, to))["quoted_id"] == first_entry["id"]
        sent_by_phone = (await phone_api.post(f"/_phone/{to}/messages", json={"to": phone, "body": "hi there"})).json()
        received = await events.wait_for(lambda e: e["type"] == "message.received"
                                         and e["data"]["text"] == "hi there")
        inbound_id = received["data"]["wa_message_id"]
        answer = await accept(api, ws, {"to": to, "type": "location", "latitude": 1.5, "longitude": 2.5,
                                        "reply_to": inbound_id})
        answered = await delivered_entry(api, phone_api, ws, answer, to)
        assert (answered["kind"], answered["quoted_id"]) == ("location", sent_by_phone["id"])

        # a reaction lands on the message it names and on no other; "" takes it away
        thumbs = await accept(api, ws, {"to": to, "type": "reaction", "message_id": second, "emoji": "👍"})
        assert (await wait_status(api, ws, thumbs, DONE | {"failed"}))["status"] in DONE

        async def reactions() -> dict[str, dict]:
            return {m["id"]: m.get("reactions") or {} for m in await inbox(phone_api, to)}
        now = await eventually(lambda: _when(reactions, lambda r: r[second_entry["id"]] == {phone: "👍"}))
        assert now[first_entry["id"]] == {}
        reaction_entries = [m for m in await inbox(phone_api, to) if m["kind"] == "reaction"]
        assert [r["reaction"] for r in reaction_entries] == [
            {"target_id": second_entry["id"], "target_from_me": True, "emoji": "👍"}]

        on_inbound = await accept(api, ws, {"to": to, "type": "reaction", "message_id": inbound_id, "emoji": "❤️"})
        assert (await wait_status(api, ws, on_inbound, DONE | {"failed"}))["status"] in DONE
        removed = await accept(api, ws, {"to": to, "type": "reaction", "message_id": second, "emoji": ""})
        assert (await wait_status(api, ws, removed, DONE | {"failed"}))["status"] in DONE
        await eventually(lambda: _when(reactions, lambda r: r[second_entry["id"]] == {}))
        reaction_entries = [m["reaction"] for m in await inbox(phone_api, to) if m["kind"] == "reaction"]
        assert reaction_entries[1:] == [
            {"target_id": sent_by_phone["id"], "target_from_me": False, "emoji": "❤️"},
            {"target_id": second_entry["id"], "target_from_me": True, "emoji": ""}]


async def _when(read, holds):
    value = await read()
    return value if holds(value) else None


async def test_a_target_the_page_does_not_know_fails_the_message(api, phone_api, service) -> None:
    ws, phone, to = "kinds-web-target", "15552410031", "15552410032"
    await linked(api, phone_api, service, ws, "k1", phone)
    before = len(await inbox(phone_api, to))
    ghost = f"false_{to}@c.us_3A00000000DEADBEEF"
    for body in ({"type": "reaction", "message_id": ghost, "emoji": "👍"},
                 {"type": "text", "text": "re: nothing", "reply_to": ghost}):
        mid = await accept(api, ws, {"to": to, **body})
        failed = await wait_status(api, ws, mid, DONE | {"failed"})
        assert failed["status"] == "failed", failed
        assert failed["history"][-1]["error"] == "target_not_found"
    # our own message that never reached WhatsApp has no WhatsApp id to quote
    reply = await accept(api, ws, {"to": to, "text": "re: the failed one", "reply_to": mid})
    failed = await wait_status(api, ws, reply, DONE | {"failed"})
    assert (failed["status"], failed["history"][-1]["error"]) == ("failed", "target_not_found")
    ok = await accept(api, ws, {"to": to, "text": "still sending"})  # nothing stuck behind them
    assert (await delivered_entry(api, phone_api, ws, ok, to))["body"] == "still sending"
    assert [m["body"] for m in (await inbox(phone_api, to))[before:]] == ["still sending"]


async def test_media_that_cannot_be_sent_fails_with_its_code(api, phone_api, service, media_server) -> None:
    ws, phone, to = "kinds-web-badmedia", "15552410051", "15552410052"
    await linked(api, phone_api, service, ws, "k1", phone)
    before = len(await inbox(phone_api, to))
    for body, code in (({"type": "image", "media": {"url": media_server + "missing.png"}}, "media_fetch_failed"),
                       ({"type": "image", "media": {"url": media_server + "invoice.pdf"}}, "media_type_not_allowed"),
                       ({"type": "sticker", "media": {"url": media_server + "clip.mp4"}}, "media_type_not_allowed")):
        mid = await accept(api, ws, {"to": to, **body})
        failed = await wait_status(api, ws, mid, DONE | {"failed"})
        assert (failed["status"], failed["history"][-1]["error"]) == ("failed", code), failed
    ok = await accept(api, ws, {"to": to, "type": "image", "media": {"url": media_server + "photo.png"}})
    assert (await delivered_entry(api, phone_api, ws, ok, to))["media"]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert len(await inbox(phone_api, to)) == before + 1


def _read_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


async def test_a_16_mb_video_reaches_the_phone_and_the_hosts_peak_memory(api, phone_api, service,
                                                                        media_server) -> None:
    """The BrowserHost process runs the sender: its peak RSS (VmHWM, reset through clear_refs before the send)
    grows by far less than the video's size, as the bytes go store -> 0600 file -> browser from disk."""
    ws, phone, to = "kinds-web-big", "15552410041", "15552410042"
    await linked(api, phone_api, service, ws, "k1", phone)
    warm = await accept(api, ws, {"to": to, "type": "image", "media": {"url": media_server + "photo.png"}})
    await delivered_entry(api, phone_api, ws, warm, to)  # media store, guard and upload path warmed up
    actors = await asyncio.to_thread(list_actors, address=service.dashboard_url, detail=True, limit=10_000,
                                     raise_on_missing_output=False)
    pids = [a.pid for a in actors if a.class_name == "BrowserHost" and a.state == "ALIVE"]
    assert len(pids) == 1, pids
    pid = pids[0]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak RSS to the current RSS
    base = _read_status(pid, "VmRSS")
    started = time.monotonic()
    mid = await accept(api, ws, {"to": to, "type": "video", "media": {"url": media_server + "big.mp4"},
                                 "caption": "big"})
    entry = await delivered_entry(api, phone_api, ws, mid, to)
    took = time.monotonic() - started
    peak = _read_status(pid, "VmHWM")
    assert (entry["media"]["size"], entry["media"]["sha256"]) == (BIG, big_sha256())
    grew = peak - base
    print(f"\n16 MB video: BrowserHost pid {pid} RSS before {base / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB, "
          f"peak growth {grew / 2**20:.1f} MB, accept -> inbox {took:.2f} s")
    assert grew < BIG  # never the whole video in the host's memory, let alone twice
