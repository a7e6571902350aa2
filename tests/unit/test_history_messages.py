"""actors/history_messages.py on a real Redis: a page's message as message.received's payload plus from_me,
media announced lazily with an id stable per (workspace, session, WhatsApp id) and one pending record."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from pydantic import TypeAdapter

from wa_ray.actors.history_messages import history_payload
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.storage import keys
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.media_policy import MediaPolicy

pytestmark = pytest.mark.asyncio

WS, SID = "ws-hist", "s1"
BASE = {"id": "false_15550002@c.us_3A01", "from": "15550002@c.us", "to": "15550001@c.us", "t": 1765000000,
        "author": None, "fromMe": False}
DIGEST = hashlib.sha256(b"jpeg bytes").digest()
IMAGE = {**BASE, "id": "false_15550002@c.us_IMG1", "type": "image", "body": None,
         "media": {"mimetype": "image/jpeg", "size": 2048, "filename": None, "caption": "look",
                   "filehash": base64.b64encode(DIGEST).decode()}}


async def payload(redis, raw: dict[str, Any], policy: MediaPolicy = MediaPolicy(), sid: str = SID,
                  ws: str = WS) -> dict[str, Any] | None:
    data = await history_payload(ws, sid, raw, PendingMediaStore(redis, 600), policy=policy)
    if data is not None:
        TypeAdapter(MessageReceivedData).validate_python(data)  # the same model as message.received
    return data


async def test_text_is_message_received_plus_from_me(redis) -> None:
    data = await payload(redis, {**BASE, "type": "chat", "body": "hello"})
    assert (data["kind"], data["text"], data["from"], data["chat_id"], data["from_me"]) == (
        "text", "hello", "15550002", "15550002@c.us", False)
    assert data["provider"] == "webjs" and data["timestamp"] == 1765000000


async def test_from_me_names_the_chat_it_went_to(redis) -> None:
    data = await payload(redis, {**BASE, "id": "true_15550002@c.us_3B", "from": "15550001@c.us",
                                 "to": "15550002@c.us", "fromMe": True, "type": "chat", "body": "hi"})
    assert (data["from_me"], data["chat_id"], data["from"]) == (True, "15550002@c.us", "15550001")


async def test_media_is_pending_with_a_stable_id_and_one_record(redis) -> None:
    first = await payload(redis, IMAGE)
    media = first["media"]
    assert media["status"] == "pending" and media["media_id"].startswith("med_")
    assert (media["mimetype"], media["size"], media["sha256"], first["text"]) == (
        "image/jpeg", 2048, DIGEST.hex(), "look")
    again = await payload(redis, IMAGE)
    assert again["media"]["media_id"] == media["media_id"]
    assert await redis.ttl(keys.media_pending(WS, media["media_id"])) > 0
    record = await PendingMediaStore(redis).get(WS, media["media_id"])
    assert record.locator == {"session_id": SID, "wa_message_id": IMAGE["id"]}
    assert record.source == "webjs" and record.max_bytes == MediaPolicy().max_bytes
    assert len([k async for k in redis.scan_iter(match="*pending*")]) == 1


async def test_the_id_differs_per_session_and_workspace(redis) -> None:
    ids = {(await payload(redis, IMAGE, sid=sid, ws=ws))["media"]["media_id"]
           for ws, sid in ((WS, SID), (WS, "s2"), ("ws-other", SID))}
    assert len(ids) == 3


@pytest.mark.parametrize("download", ["eager", "lazy"])
async def test_never_downloaded_whatever_the_mode(redis, download: str) -> None:
    media = (await payload(redis, IMAGE, MediaPolicy(download, 16 * 1024 * 1024)))["media"]
    assert media["status"] == "pending"


async def test_policy_off_announces_no_id(redis) -> None:
    media = (await payload(redis, IMAGE, MediaPolicy("off")))["media"]
    assert (media["status"], media["media_id"]) == ("off", None)
    assert [k async for k in redis.scan_iter(match="*pending*")] == []


async def test_over_the_cap_is_too_large(redis) -> None:
    media = (await payload(redis, IMAGE, MediaPolicy("lazy", 1024)))["media"]
    assert (media["status"], media["media_id"]) == ("too_large", None)


async def test_location_and_odd_reports(redis) -> None:
    loc = await payload(redis, {**BASE, "type": "location", "body": None,
                                "location": {"lat": 1.5, "lng": 2.5, "loc": "Home\nStreet 1"}})
    assert loc["location"] == {"latitude": 1.5, "longitude": 2.5, "name": "Home", "address": "Street 1"}
    assert await payload(redis, {**BASE, "id": None, "type": "chat"}) is None
    assert await payload(redis, {**BASE, "from": None, "type": "chat"}) is None
    odd = await payload(redis, {**BASE, "type": 5, "body": ["x"], "t": "soon", "fromMe": "yes"})
    assert (odd["kind"], odd["timestamp"], odd["from_me"]) == ("unknown", None, False)
