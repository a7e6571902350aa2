"""The documented event payloads (serve_app/event_models.py) fit what both inbound normalizers really
publish: each kind from the WhatsApp Web bridge's report and from a Cloud API webhook, with the media
object made by the real intake (media store on an embedded Redis), validates against its model and is
selected by its `kind`."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from wa_ray.actors import inbound_cloud, inbound_webjs
from wa_ray.actors.media_intake import intake
from wa_ray.serve_app.event_models import EVENT_MODELS, RECEIVED_MODELS, MessageReceivedData
from wa_ray.sessions.state import PageSignal
from wa_ray.storage.media import MediaStore
from wa_ray.storage.media_policy import MediaPolicy

pytestmark = pytest.mark.asyncio

RECEIVED = TypeAdapter(MessageReceivedData)
PHOTO = os.urandom(2048)


@pytest.fixture
def store(redis, tmp_path: Path) -> MediaStore:
    return MediaStore(redis, tmp_path / "media", [("k0000001", os.urandom(32))])


async def _bytes() -> AsyncIterator[bytes]:
    async def stream() -> AsyncIterator[bytes]:
        yield PHOTO
    return stream()


async def _nobody(_wa_id: str) -> str | None:
    return None


def _check_received(data: dict[str, Any]) -> None:
    model = RECEIVED.validate_python(data)
    assert type(model) is RECEIVED_MODELS[data["kind"]], data["kind"]
    envelope = {"id": "1-0", "type": "message.received", "workspace_id": "ws", "session_id": None, "ts": 1.0,
                "data": data}
    EVENT_MODELS["message.received"].model_validate(envelope)


async def test_webjs_payloads_fit_the_documented_models(store) -> None:
    async def fetch(info: inbound_webjs.PageMediaInfo) -> dict[str, Any]:
        return await intake(store, MediaPolicy(), "ws-ev", mimetype=info.mimetype, filename=info.filename,
                            size_hint=info.size, sha256=info.sha256, chunks_factory=_bytes)

    base = {"id": "false_15551230001@c.us_3EB0AA", "from": "15551230001@c.us", "to": "15559870000@c.us",
            "t": 1765000000}
    reports = [
        {**base, "type": "chat", "body": "hello", "quoted": {"id": "true_15551230001@c.us_3EB0BB"}},
        {**base, "type": "image", "media": {"mimetype": "image/jpeg", "size": len(PHOTO), "caption": "look",
                                            "filehash": base64.b64encode(hashlib.sha256(PHOTO).digest()).decode()}},
        {**base, "type": "document", "media": {"mimetype": "application/pdf", "filename": "a.pdf", "size": 10}},
        {**base, "type": "ptt", "media": {"mimetype": "audio/ogg; codecs=opus"}},
        {**base, "type": "location", "location": {"lat": 1.5, "lng": 2.5, "loc": "Shop\nMain street 1"}},
        {**base, "type": "location", "location": "garbage"},
        {**base, "type": "vcard", "vcards": ["BEGIN:VCARD\nVERSION:3.0\nFN:Bo\nTEL;waid=15550001:+1 555 0001\nEND:VCARD"]},
        {**base, "type": "poll_creation"},
        {**base, "type": "e2e_notification"},
    ]
    kinds = []
    for report in reports:
        data = await inbound_webjs.received(report, fetch_media=fetch, message_of=_nobody)
        _check_received(data)
        kinds.append(data["kind"])
    assert kinds == ["text", "image", "document", "voice", "location", "location", "contacts", "poll", "unknown"]
    for signal, payload in ((PageSignal.REACTION, {"id": "r1", "target": "t1", "emoji": "👍", "from": "1@c.us"}),
                            (PageSignal.REVOKE, {"id": "m1", "from": "1@c.us"}),
                            (PageSignal.EDIT, {"id": "m1", "edit_id": "e1", "text": "new", "from": "1@c.us"})):
        changed = await inbound_webjs.change(signal, payload, message_of=_nobody)
        assert changed is not None
        EVENT_MODELS[changed.type].model_validate({"id": "1-0", "type": changed.type, "workspace_id": "ws",
                                                  "session_id": "s", "ts": 1.0, "data": changed.data})


async def test_cloud_payloads_fit_the_documented_models(store) -> None:
    async def fetch(_kind: Any, obj: dict[str, Any]) -> dict[str, Any]:
        return await intake(store, MediaPolicy("off"), "ws-ev", mimetype=obj.get("mime_type"),
                            filename=obj.get("filename"), size_hint=None, sha256=obj.get("sha256"),
                            chunks_factory=_bytes)

    base = {"from": "15551230001", "timestamp": "1765000000"}
    messages = [
        {**base, "id": "wamid.1", "type": "text", "text": {"body": "hi"}, "context": {"id": "wamid.0"}},
        {**base, "id": "wamid.2", "type": "image", "image": {"id": "m", "mime_type": "image/jpeg", "caption": "c"}},
        {**base, "id": "wamid.3", "type": "audio", "audio": {"id": "m", "mime_type": "audio/ogg", "voice": True}},
        {**base, "id": "wamid.4", "type": "location", "location": {"latitude": 1, "longitude": 2}},
        {**base, "id": "wamid.5", "type": "contacts",
         "contacts": [{"name": {"formatted_name": "Bo"}, "phones": [{"phone": "+1 555", "wa_id": "1555"}]}]},
        {**base, "id": "wamid.6", "type": "unsupported"},
    ]
    kinds = []
    for msg in messages:
        normalized = await inbound_cloud.normalize(msg, name="Ana", business="15559870000", fetch_media=fetch,
                                                   message_of=_nobody)
        assert normalized is not None
        _check_received(normalized[1])
        kinds.append(normalized[1]["kind"])
    assert kinds == ["text", "image", "voice", "location", "contacts", "unknown"]
    reaction = await inbound_cloud.normalize({**base, "id": "wamid.7", "type": "reaction",
                                              "reaction": {"message_id": "wamid.1", "emoji": "❤"}},
                                             name=None, business=None, fetch_media=fetch, message_of=_nobody)
    assert reaction is not None and reaction[0] == "message.reaction"
    EVENT_MODELS["message.reaction"].model_validate({"id": "1-0", "type": reaction[0], "workspace_id": "ws",
                                                    "session_id": None, "ts": 1.0, "data": reaction[1]})
