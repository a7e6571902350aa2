"""Issue 13, the `lazy` inbound media policy on the real stack: a received media is announced at once
(`media.status: pending`, a `media_id` already allotted), nothing is downloaded until its first
`GET /v1/workspaces/{ws}/media/{id}`, which downloads it once (concurrent GETs share it), stores it under
that id and streams it; later GETs serve the stored copy. Both providers: the WhatsApp Web simulator's
phone (the page holds the media, the node's BrowserHost pulls it out) and the Cloud API simulator (Meta's
media id, fetched with the workspace's token)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import TypeAdapter

from tests.api.conftest import client_for, key_store, live_redis, make_key  # noqa: F401
from tests.events import EventCollector, collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import cloud_config, put_provider
from tests.messages.test_inbound_kinds import PNG, phone_send, wa_in
from wa_ray.ids import is_valid_id
from wa_ray.serve_app.event_models import MessageReceivedData
from wa_ray.storage import keys

WS_WEB = "in-lazy-web"
WEB_NUMBER, WEB_PHONE = "15552330", "15552331"
WS_CLOUD = "in-lazy-cloud"
CLOUD_PNID, CLOUD_TOKEN, CLOUD_USER = "700330", "tok-lazy-cloud", "15557780330"
JPEG = b"\xff\xd8\xff\xe0" + secrets.token_bytes(700_000) + b"\xff\xd9"  # more than one page chunk


async def put_lazy(api: httpx.AsyncClient, ws: str) -> None:
    put = await api.put(f"/v1/workspaces/{ws}/media-policy", json={"download": "lazy"})
    assert put.status_code == 200, put.text
    assert put.json()["download"] == "lazy"
    assert (await api.get(f"/v1/workspaces/{ws}/media-policy")).json()["download"] == "lazy"


async def received(events: EventCollector, wa_id: str) -> dict[str, Any]:
    event = await events.wait_for(lambda e: e["type"] == "message.received" and e["data"]["wa_message_id"] == wa_id)
    TypeAdapter(MessageReceivedData).validate_python(event["data"])  # `pending` is in the documented schema
    return event["data"]


async def assert_not_downloaded(redis, service, ws: str, media_id: str) -> None:
    assert await redis.exists(keys.media_pending(ws, media_id))
    assert not await redis.exists(keys.media(ws, media_id))
    assert not (Path(service.config.data_dir) / "media" / ws / media_id).exists()


async def assert_served_once_then_stored(api: httpx.AsyncClient, redis, ws: str, media_id: str, content: bytes,
                                         other: httpx.AsyncClient, other_ws: str) -> None:
    # another workspace's key gets 404 for it, before and after, and triggers nothing
    for path in (f"/v1/workspaces/{ws}/media/{media_id}", f"/v1/workspaces/{other_ws}/media/{media_id}"):
        assert (await other.get(path)).status_code == 404
    assert await redis.exists(keys.media_pending(ws, media_id))
    # three GETs at once: one download, every one gets the exact bytes
    first = await asyncio.gather(*(api.get(f"/v1/workspaces/{ws}/media/{media_id}") for _ in range(3)))
    for response in first:
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(content).hexdigest()
        assert response.headers["x-media-sha256"] == hashlib.sha256(content).hexdigest()
    assert not await redis.exists(keys.media_pending(ws, media_id))  # stored now: the record is gone
    stored = orjson.loads(await redis.get(keys.media(ws, media_id)))
    assert (stored["media_id"], stored["size"]) == (media_id, len(content))
    again = await api.get(f"/v1/workspaces/{ws}/media/{media_id}")
    assert again.status_code == 200 and again.content == content  # the stored copy
    for path in (f"/v1/workspaces/{ws}/media/{media_id}", f"/v1/workspaces/{other_ws}/media/{media_id}"):
        assert (await other.get(path)).status_code == 404


async def test_lazy_media_from_the_whatsapp_web_page(api, phone_api, service, live_redis, make_key,
                                                     client_for) -> None:
    await put_lazy(api, WS_WEB)
    other_ws = f"in-lazy-other-{secrets.token_hex(3)}"
    other = client_for(await make_key("workspace", other_ws, rate_per_s=0))
    async with collect_events(await stream_url(api, service.base_url, WS_WEB)) as events:
        await link_session(api, phone_api, events, WS_WEB, "z1", WEB_NUMBER)
        sent = await phone_send(phone_api, WEB_PHONE, "kinds", {
            "to": WEB_NUMBER, "kind": "image", "mimetype": "image/jpeg", "caption": "later please",
            "data_b64": base64.b64encode(JPEG).decode()})
        data = await received(events, wa_in(WEB_PHONE, sent))
        media = data["media"]
        assert (data["kind"], data["text"]) == ("image", "later please")
        assert media["status"] == "pending" and is_valid_id(media["media_id"]), media
        assert (media["mimetype"], media["size"], media["sha256"]) == (
            "image/jpeg", len(JPEG), hashlib.sha256(JPEG).hexdigest())  # as the page announced it
        await assert_not_downloaded(live_redis, service, WS_WEB, media["media_id"])
        await assert_served_once_then_stored(api, live_redis, WS_WEB, media["media_id"], JPEG, other, other_ws)

        # a second one, fetched after others arrived: the page still gives it
        small = await phone_send(phone_api, WEB_PHONE, "kinds", {
            "to": WEB_NUMBER, "kind": "image", "mimetype": "image/png", "data_b64": base64.b64encode(PNG).decode()})
        media = (await received(events, wa_in(WEB_PHONE, small)))["media"]
        assert media["status"] == "pending"
        # the chat's listing (and so a sync) names the same media by the same id: one media, one id
        listed = await api.get(f"/v1/workspaces/{WS_WEB}/sessions/z1/chats/{WEB_PHONE}@c.us/messages")
        assert listed.status_code == 200, listed.text
        by_wa_id = {m["wa_message_id"]: m for m in listed.json()["items"]}
        assert by_wa_id[wa_in(WEB_PHONE, small)]["media"]["media_id"] == media["media_id"]
        assert by_wa_id[wa_in(WEB_PHONE, sent)]["media"]["media_id"] == data["media"]["media_id"]
        got = await api.get(f"/v1/workspaces/{WS_WEB}/media/{media['media_id']}")
        assert got.status_code == 200 and got.content == PNG


async def test_lazy_media_from_the_cloud_api(api, service, meta_app, live_redis, make_key, client_for) -> None:
    meta_app.control.register_phone_number(CLOUD_PNID, CLOUD_TOKEN)
    await put_provider(api, WS_CLOUD, priority="meta", cloud=cloud_config(meta_app, CLOUD_PNID, CLOUD_TOKEN))
    await put_lazy(api, WS_CLOUD)
    other_ws = f"in-lazy-other-{secrets.token_hex(3)}"
    other = client_for(await make_key("workspace", other_ws, rate_per_s=0))
    async with collect_events(await stream_url(api, service.base_url, WS_CLOUD)) as events:
        image = meta_app.control.inbound_message(CLOUD_USER, CLOUD_PNID, {"type": "image", "image": {
            "caption": "the receipt"}}, media=JPEG, mime_type="image/jpeg")
        data = await received(events, image["id"])
        media = data["media"]
        assert (data["kind"], data["text"], data["provider"]) == ("image", "the receipt", "meta")
        assert media["status"] == "pending" and is_valid_id(media["media_id"]), media
        assert (media["mimetype"], media["sha256"]) == ("image/jpeg", hashlib.sha256(JPEG).hexdigest())
        await assert_not_downloaded(live_redis, service, WS_CLOUD, media["media_id"])
        record = await live_redis.get(keys.media_pending(WS_CLOUD, media["media_id"]))
        assert CLOUD_TOKEN not in record and image["media_id"] in record  # Meta's id, no token
        await assert_served_once_then_stored(api, live_redis, WS_CLOUD, media["media_id"], JPEG, other, other_ws)

        # Meta no longer has the next one when it is asked for: 502 media_unavailable, nothing stored
        gone = meta_app.control.inbound_message(CLOUD_USER, CLOUD_PNID, {"type": "document", "document": {}},
                                                media=b"%PDF-1.4 gone", mime_type="application/pdf",
                                                filename="gone.pdf")
        media = (await received(events, gone["id"]))["media"]
        assert (media["status"], media["filename"]) == ("pending", "gone.pdf")
        async with httpx.AsyncClient() as raw:
            deleted = await raw.delete(f"{meta_app.url}/v21.0/{gone['media_id']}",
                                       headers={"Authorization": f"Bearer {CLOUD_TOKEN}"})
            assert deleted.status_code == 200, deleted.text
        failed = await api.get(f"/v1/workspaces/{WS_CLOUD}/media/{media['media_id']}")
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "media_unavailable", failed.text
        assert CLOUD_TOKEN not in failed.text
        await assert_not_downloaded(live_redis, service, WS_CLOUD, media["media_id"])
