"""The WhatsApp Web inbound mapping (actors/inbound_webjs.py) on its own: what a page reports, odd shapes
included, and the simulator's media encryption that the page undoes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest
from pydantic import TypeAdapter

from wa_ray.actors import inbound_webjs
from wa_ray.actors.inbound_webjs import PageMediaInfo, change, contact_of, hex_sha256, location_of, received
from wa_ray.serve_app.event_models import (
    MessageEditedData,
    MessageReactionData,
    MessageReceivedData,
    MessageRevokedData,
)
from wa_ray.sessions.state import LIFECYCLE_SIGNALS, MESSAGE_CHANGE_SIGNALS, PageSignal
from wa_ray.simulator.wa_web import media_crypto

OURS = {"true_15550001@c.us_3EB0AA": "msg_ours"}


async def message_of(wa_id: str) -> str | None:
    return OURS.get(wa_id)


def run(msg: dict[str, Any], seen: list[PageMediaInfo] | None = None) -> dict[str, Any] | None:
    async def fetch_media(info: PageMediaInfo) -> dict[str, Any]:
        if seen is not None:
            seen.append(info)
        return {"media_id": "med_1", "mimetype": info.mimetype, "filename": info.filename, "size": info.size,
                "sha256": info.sha256, "status": "stored"}

    data = asyncio.run(received(msg, fetch_media=fetch_media, message_of=message_of))
    if data is not None:
        TypeAdapter(MessageReceivedData).validate_python(data)  # what we publish is what the OpenAPI says
    return data


BASE = {"id": "false_15550002@c.us_3A01", "from": "15550002@c.us", "to": "15550001@c.us", "t": 1765000000,
        "author": None}


def test_text_and_reply_to_ours() -> None:
    data = run({**BASE, "type": "chat", "body": "hi", "quoted": {"id": "true_15550001@c.us_3EB0AA"}})
    assert (data["kind"], data["text"], data["from"], data["to"]) == ("text", "hi", "15550002", "15550001")
    assert data["reply_to"] == {"wa_message_id": "true_15550001@c.us_3EB0AA", "message_id": "msg_ours"}


def test_media_caption_and_announced_hash() -> None:
    digest = hashlib.sha256(b"png").digest()
    seen: list[PageMediaInfo] = []
    data = run({**BASE, "type": "ptt", "body": None, "media": {"mimetype": "audio/ogg", "size": 3, "caption": None,
                                                              "filehash": base64.b64encode(digest).decode()}}, seen)
    assert (data["kind"], data["text"]) == ("voice", None)
    assert seen == [PageMediaInfo(BASE["id"], "audio/ogg", None, 3, digest.hex())]
    data = run({**BASE, "type": "document", "media": {"mimetype": "application/pdf", "filename": "a.pdf",
                                                      "caption": "invoice", "size": -5, "filehash": "nope"}})
    assert (data["kind"], data["text"], data["media"]["size"], data["media"]["sha256"]) == (
        "document", "invoice", None, None)


def test_location_contacts_and_unknown() -> None:
    data = run({**BASE, "type": "location", "body": "thumbnail", "location": {"lat": 1, "lng": 2.5, "loc": "Home"}})
    assert (data["text"], data["location"]) == (None, {"latitude": 1.0, "longitude": 2.5, "name": "Home",
                                                       "address": None})
    assert location_of({"lat": "1", "lng": 2}) is None and location_of(None) is None
    data = run({**BASE, "type": "multi_vcard", "vcards": ["BEGIN:VCARD\nFN:A\nEND:VCARD", 7, ""]})
    assert data["contacts"] == [{"name": {"formatted_name": "A"}, "phones": [], "vcard": "BEGIN:VCARD\nFN:A\nEND:VCARD"}]
    data = run({**BASE, "type": "call_log", "body": "x"})
    assert (data["kind"], data["type"], data["text"]) == ("unknown", "call_log", None)


def test_vcard_folded_lines_grouped_tel_and_waid() -> None:
    card = "BEGIN:VCARD\r\nFN:Ada\r\n  Lovelace\r\nitem1.TEL;waid=15550777:+1 555 50777\r\nTEL;waid=x1:+2\r\nEND:VCARD"
    assert contact_of(card)["name"] == {"formatted_name": "Ada Lovelace"}
    assert contact_of(card)["phones"] == [{"phone": "+1 555 50777", "wa_id": "15550777"}, {"phone": "+2"}]


def test_odd_shapes_never_raise() -> None:
    data = run({"id": "x", "from": "15550002@c.us", "to": None, "type": ["chat"], "body": {"a": 1}, "t": True,
                "media": "no", "quoted": {"id": 3}})
    assert data is not None
    assert (data["kind"], data["to"], data["text"], data["timestamp"]) == ("unknown", None, None, None)
    assert "reply_to" not in data
    assert run({**BASE, "from": 5, "type": "chat", "body": "hi"}) is None  # no chat: nothing to publish
    assert hex_sha256("A" * 100) is None and hex_sha256(None) is None


@pytest.mark.parametrize(("kind", "payload", "model"), [
    (PageSignal.REACTION, {"id": "false_a@c.us_R1", "target": "true_15550001@c.us_3EB0AA", "emoji": "👍",
                           "from": "15550002@c.us"}, MessageReactionData),
    (PageSignal.REVOKE, {"id": "false_a@c.us_M1", "from": "15550002@c.us"}, MessageRevokedData),
    (PageSignal.EDIT, {"id": "false_a@c.us_M1", "edit_id": "false_a@c.us_E1", "text": "new",
                       "from": "15550002@c.us"}, MessageEditedData),
])
def test_changes_map_to_their_events(kind: PageSignal, payload: dict[str, Any], model: type) -> None:
    result = asyncio.run(change(kind, payload, message_of=message_of))
    assert result is not None and result.data["from"] == "15550002" and result.data["provider"] == "webjs"
    model.model_validate(result.data)
    if kind is PageSignal.REACTION:
        assert result.data["target_message_id"] == "msg_ours" and result.dedupe == "reaction:false_a@c.us_R1"
    # without its ids a change is dropped, not an exception
    assert asyncio.run(change(kind, {"from": "x"}, message_of=message_of)) is None


def test_change_signals_are_data_plane() -> None:
    assert MESSAGE_CHANGE_SIGNALS.isdisjoint(LIFECYCLE_SIGNALS)
    assert inbound_webjs.kind_of("ptt") == "voice" and inbound_webjs.kind_of(None) == "unknown"


def test_simulator_media_crypto_round_trip_and_mac() -> None:
    enc = media_crypto.encrypt(b"x" * 1000, "document")
    assert enc.filehash == base64.b64encode(hashlib.sha256(b"x" * 1000).digest()).decode()
    assert enc.enc_filehash == base64.b64encode(hashlib.sha256(enc.enc).digest()).decode()
    assert media_crypto.decrypt(enc.enc, "document", enc.media_key) == b"x" * 1000
    with pytest.raises(ValueError):
        media_crypto.decrypt(enc.enc, "image", enc.media_key)  # another type's keys
    with pytest.raises(ValueError):
        media_crypto.decrypt(enc.enc[:-1] + bytes([enc.enc[-1] ^ 1]), "document", enc.media_key)


def test_in_flight_holds_a_change_until_its_message_is_out_and_no_longer() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        flight = inbound_webjs.InFlight(wait_s=0.5)

        async def message() -> None:
            async with flight.track("ws", "m1"):
                await asyncio.sleep(0.05)
                order.append("received")

        async def reaction() -> None:
            await asyncio.sleep(0.01)
            await flight.settled("ws", "m1")
            order.append("reaction")

        await asyncio.gather(message(), reaction())
        await flight.settled("ws", "m1")  # nothing in flight: returns at once
        async with flight.track("ws", "stuck"):
            started = asyncio.get_running_loop().time()
            await flight.settled("ws", "stuck")  # bounded: a stalled message holds its changes 0.5 s at most
            order.append(f"bounded {asyncio.get_running_loop().time() - started < 1}")
        return order

    assert asyncio.run(scenario()) == ["received", "reaction", "bounded True"]


def test_a_repeat_report_of_a_message_in_flight_does_not_release_its_changes() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        flight = inbound_webjs.InFlight(wait_s=2)

        async def message() -> None:
            async with flight.track("ws", "m1"):
                await asyncio.sleep(0.2)  # the first report downloads its media
                order.append("received")

        async def repeat() -> None:
            await asyncio.sleep(0.01)
            async with flight.track("ws", "m1"):  # the page reports it again: a duplicate, dropped at once
                order.append("repeat dropped")

        async def reaction() -> None:
            await asyncio.sleep(0.05)
            await flight.settled("ws", "m1")
            order.append("reaction")

        await asyncio.gather(message(), repeat(), reaction())
        return order

    assert asyncio.run(scenario()) == ["repeat dropped", "received", "reaction"]
