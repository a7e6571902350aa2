"""Attacks on media a `lazy` workspace received but has not downloaded yet, against the running service:
another workspace's key, through its own workspace's path or the owner's, cannot read the media nor make
the service download it; an id that was never allotted (well-formed or not) is the same 404; the download
lock is held by one request at a time and only its holder frees it. No refusal says whether the id exists."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from tests.messages.helpers import cloud_config, put_provider
from wa_ray.storage import keys
from wa_ray.storage.media_pending import PendingMediaStore

TOKEN, USER = "tok-lazy-attack", "15557780340"
SECRET_BYTES = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(2048)  # what must never reach another caller


@pytest.fixture
async def lazy_tenants(api, meta_app, make_key, client_for):
    """Workspace a (Cloud API on a number of its own, lazy policy) and workspace b, each with its own key."""
    a, b = f"la-{secrets.token_hex(3)}", f"lb-{secrets.token_hex(3)}"
    pnid = str(7_340_000 + secrets.randbelow(10_000))
    meta_app.control.register_phone_number(pnid, TOKEN)
    await put_provider(api, a, priority="meta", cloud=cloud_config(meta_app, pnid, TOKEN))
    assert (await api.put(f"/v1/workspaces/{a}/media-policy", json={"download": "lazy"})).status_code == 200
    key_a = await make_key("workspace", a, rate_per_s=0)
    key_b = await make_key("workspace", b, rate_per_s=0)
    return (a, client_for(key_a), pnid), (b, client_for(key_b))


async def pending_media(api, service, meta_app, ws: str, pnid: str) -> str:
    """A media received by `ws` and still pending: its announced id."""
    from tests.events import collect_events
    from tests.flows import stream_url

    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        sent = meta_app.control.inbound_message(USER, pnid, {"type": "image", "image": {}}, media=SECRET_BYTES,
                                                mime_type="image/png")
        event = await events.wait_for(lambda e: e["type"] == "message.received"
                                      and e["data"]["wa_message_id"] == sent["id"])
    media = event["data"]["media"]
    assert media["status"] == "pending", media
    return str(media["media_id"])


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] in ("not_found",)
    assert SECRET_BYTES not in response.content


async def assert_untouched(redis, service, ws: str, media_id: str, *others: str) -> None:
    """Still pending, downloaded nowhere, no download under way."""
    assert await redis.exists(keys.media_pending(ws, media_id))
    assert not await redis.exists(keys.media_pending_lock(ws, media_id))
    for owner in (ws, *others):
        assert not await redis.exists(keys.media(owner, media_id))
        assert not (Path(service.config.data_dir) / "media" / owner / media_id).exists()


async def test_another_workspace_cannot_read_or_trigger_the_download(api, service, meta_app, lazy_tenants,
                                                                     live_redis) -> None:
    (a, client_a, pnid), (b, client_b) = lazy_tenants
    media_id = await pending_media(api, service, meta_app, a, pnid)
    never = f"med_{secrets.token_hex(12)}"
    answers = []
    for path in (f"/v1/workspaces/{a}/media/{media_id}",  # the owner's path with b's key
                 f"/v1/workspaces/{b}/media/{media_id}",  # b's own path with a's id
                 f"/v1/workspaces/{b}/media/{never}"):  # an id nobody was given
        response = await client_b.get(path)
        assert_not_found(response)
        answers.append(response.json()["error"])
    # a's id under b's path and an id never allotted get the same answer: nothing tells them apart
    assert answers[1] == answers[2]
    await assert_untouched(live_redis, service, a, media_id, b)
    # the owner still gets it, byte for byte
    got = await client_a.get(f"/v1/workspaces/{a}/media/{media_id}")
    assert got.status_code == 200 and got.content == SECRET_BYTES


async def test_an_id_never_allotted_is_404(lazy_tenants, live_redis) -> None:
    (a, client_a, _), _ = lazy_tenants
    for media_id in (f"med_{secrets.token_hex(12)}", "med_" + "0" * 24, "med_..%2F..%2Fetc", "x" * 300):
        assert_not_found(await client_a.get(f"/v1/workspaces/{a}/media/{media_id}"))
    # a record of the same id planted under another workspace does not make it a's
    other = f"lc-{secrets.token_hex(3)}"
    planted = await PendingMediaStore(live_redis, 600).allot(
        other, source="cloud_api", mimetype="image/png", filename=None, size=None, sha256=None, max_bytes=1000,
        locator={"media": "1"})
    assert_not_found(await client_a.get(f"/v1/workspaces/{a}/media/{planted.media_id}"))
    assert await live_redis.exists(keys.media_pending(other, planted.media_id))
    assert not await live_redis.exists(keys.media_pending_lock(other, planted.media_id))
    await live_redis.delete(keys.media_pending(other, planted.media_id))


async def test_the_download_lock_has_one_holder(live_redis) -> None:
    store = PendingMediaStore(live_redis, 600)
    ws, media_id = f"ld-{secrets.token_hex(3)}", f"med_{secrets.token_hex(12)}"
    token = await store.claim(ws, media_id, 5)
    assert token is not None
    assert await store.claim(ws, media_id, 5) is None  # a second request waits, it does not download too
    await store.release(ws, media_id, "not-the-token")
    assert await store.held(ws, media_id)  # only the holder frees it
    await store.release(ws, media_id, token)
    assert not await store.held(ws, media_id)
    again = await store.claim(ws, media_id, 5)
    assert again is not None and again != token
    await store.release(ws, media_id, again)
