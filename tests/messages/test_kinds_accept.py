"""POST /messages for every kind on the running service: each accepted (202) and stored with its content
dict, each bad input a 4xx in the error shape that never quotes what it refused, never a 500; routing by
kind (templates to the Cloud API, polls to WhatsApp Web, a pinned provider that cannot send the kind 422).

The session `s1` is created and never linked, so what is accepted stays queued where the test reads it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wa_ray.simulator.cloud_api.testing import serve_in_thread
from wa_ray.storage import keys
from tests.messages.helpers import cloud_config, eventually, message, put_provider

TO = "15553330001"
CANARY = "CANARY-" + secrets.token_hex(6)  # in every refused value: must never come back
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def media_server() -> Iterator[str]:
    """A loopback file server this test owns (the accept check never fetches; the sender may)."""
    async def png(request: Request) -> Response:
        return Response(PNG, media_type="image/png")

    with serve_in_thread(Starlette(routes=[Route("/{name:path}", png)])) as served:
        yield served.url


@pytest.fixture
async def ws_with_session(api: httpx.AsyncClient) -> AsyncIterator[str]:
    ws = f"kinds-s-{secrets.token_hex(3)}"
    assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "s1"})).status_code == 201
    yield ws
    await api.delete(f"/v1/workspaces/{ws}/sessions/s1")


async def post(api: httpx.AsyncClient, ws: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    if ws.startswith("kinds-s-"):  # its session is never linked: name it, or nothing could take the message
        body = {"session_id": "s1", **body}
    return await api.post(f"/v1/workspaces/{ws}/messages", json={"to": TO, **body}, headers=headers or None)


async def accepted(api: httpx.AsyncClient, ws: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await post(api, ws, body)
    assert response.status_code == 202, (body, response.text)
    return await message(api, ws, response.json()["message_id"])


async def upload(api: httpx.AsyncClient, ws: str, data: bytes, mimetype: str, name: str = "f.bin") -> dict[str, Any]:
    response = await api.post(f"/v1/workspaces/{ws}/media", files={"file": (name, data, mimetype)})
    assert response.status_code == 201, response.text
    return response.json()


async def test_every_kind_is_accepted_with_its_content(api, ws_with_session, media_server, service) -> None:
    ws = ws_with_session
    plain = await accepted(api, ws, {"text": "hello"})
    assert (plain["type"], plain["content"], plain["error"]) == ("text", {"text": "hello", "preview_url": False}, None)
    inbound_id = "true_15553330001@c.us_3EB0C0FFEE"
    text = await accepted(api, ws, {"type": "text", "text": "see https://x.example", "preview_url": True,
                                    "reply_to": inbound_id})
    assert text["content"] == {"text": "see https://x.example", "preview_url": True, "reply_to": inbound_id}

    png = await upload(api, ws, PNG, "image/png", "pic.png")
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"type": "image", "media": {"media_id": png["media_id"]}, "caption": "look", "reply_to": plain["message_id"]},
         {"media_id": png["media_id"], "url": None, "caption": "look", "filename": None,
          "reply_to": plain["message_id"]}),
        ({"type": "image", "media": {"url": media_server + "/a.png"}},
         {"media_id": None, "url": media_server + "/a.png", "caption": None, "filename": None}),
        ({"type": "video", "media": {"url": media_server + "/v.mp4"}, "caption": "clip"},
         {"media_id": None, "url": media_server + "/v.mp4", "caption": "clip", "filename": None}),
        ({"type": "audio", "media": {"url": media_server + "/a.mp3"}},
         {"media_id": None, "url": media_server + "/a.mp3", "caption": None, "filename": None}),
        ({"type": "voice", "media": {"url": media_server + "/v.ogg"}},
         {"media_id": None, "url": media_server + "/v.ogg", "caption": None, "filename": None}),
        ({"type": "document", "media": {"url": media_server + "/i.pdf"}, "caption": "invoice", "filename": "inv 7.pdf"},
         {"media_id": None, "url": media_server + "/i.pdf", "caption": "invoice", "filename": "inv 7.pdf"}),
        ({"type": "sticker", "media": {"url": media_server + "/s.webp"}},
         {"media_id": None, "url": media_server + "/s.webp", "caption": None, "filename": None}),
        ({"type": "location", "latitude": -33.8688, "longitude": 151.2093, "name": "Opera", "address": "Sydney"},
         {"latitude": -33.8688, "longitude": 151.2093, "name": "Opera", "address": "Sydney"}),
        ({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ada L", "first_name": "Ada"},
                                            "phones": [{"phone": "+1 555 0100", "type": "CELL", "wa_id": "15550100"}],
                                            "emails": [{"email": "ada@example.com"}], "org": {"company": "AE"}}]},
         {"contacts": [{"name": {"formatted_name": "Ada L", "first_name": "Ada"},
                        "phones": [{"phone": "+1 555 0100", "type": "CELL", "wa_id": "15550100"}],
                        "emails": [{"email": "ada@example.com"}], "org": {"company": "AE"}}]}),
        ({"type": "reaction", "message_id": plain["message_id"], "emoji": "👍"},
         {"message_id": plain["message_id"], "emoji": "👍"}),
        ({"type": "reaction", "message_id": inbound_id, "emoji": ""}, {"message_id": inbound_id, "emoji": ""}),
        ({"type": "poll", "name": "Lunch?", "options": ["Pizza", "Sushi", "Salad"], "allow_multiple": True},
         {"name": "Lunch?", "options": ["Pizza", "Sushi", "Salad"], "allow_multiple": True}),
    ]
    for body, content in cases:
        got = await accepted(api, ws, body)
        assert (got["type"], got["content"], got["provider"], got["session_id"]) == (
            body["type"], content, "webjs", "s1"), body
        assert got["status"] == "queued"
    caption = await accepted(api, ws, cases[0][0])
    from wa_ray.storage.redis_client import connect

    redis = connect(service.config.redis_url)
    try:
        record = await redis.hgetall(keys.message(ws, caption["message_id"]))
        assert (record["kind"], record["text"]) == ("image", "look")  # record["text"] is the caption
    finally:
        await redis.aclose()
    print(f"\n{len(cases) + 2} kinds/variants accepted with their content")


async def test_idempotency_covers_the_whole_content(api, ws_with_session, media_server) -> None:
    ws = ws_with_session
    body = {"type": "image", "media": {"url": media_server + "/a.png"}, "caption": "one"}
    first = await post(api, ws, body, **{"Idempotency-Key": "img-1"})
    again = await post(api, ws, body, **{"Idempotency-Key": "img-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["message_id"] == again.json()["message_id"]
    other = await post(api, ws, {**body, "caption": "two"}, **{"Idempotency-Key": "img-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    text = await post(api, ws, {"text": "one"}, **{"Idempotency-Key": "txt-1"})
    as_kind = await post(api, ws, {"type": "text", "text": "one"}, **{"Idempotency-Key": "txt-1"})
    assert text.json()["message_id"] == as_kind.json()["message_id"]  # `type: text` is the same request


def assert_refused(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, error
    assert CANARY not in response.text


async def test_bad_input_is_a_clear_4xx_that_never_echoes(api, service) -> None:
    ws = f"kinds-bad-{secrets.token_hex(3)}"
    other_ws = f"kinds-other-{secrets.token_hex(3)}"
    theirs = await upload(api, other_ws, PNG, "image/png")
    mine_doc = await upload(api, ws, b"%PDF-1.4 " + CANARY.encode(), "application/pdf")
    c = CANARY
    bad_422: list[dict[str, Any]] = [
        {"type": c, "text": "x"},
        {"type": ["image"], "text": "x"},
        {"type": "text"},
        {"type": "text", "text": "x", "caption": c},
        {"type": "text", "text": "x" * 4097},
        {"type": "image"},
        {"type": "image", "media": {}},
        {"type": "image", "media": {"url": "https://x.example/" + c, "media_id": "med_x"}},
        {"type": "image", "media": {"media_id": "../" + c}},
        {"type": "image", "media": {"url": "https://x.example/a.png"}, "filename": c + ".png"},
        {"type": "audio", "media": {"url": "https://x.example/a.mp3"}, "caption": c},
        {"type": "sticker", "media": {"url": "https://x.example/a.webp"}, "caption": c},
        {"type": "document", "media": {"url": "https://x.example/a.pdf"}, "filename": "../" + c},
        {"type": "document", "media": {"url": "https://x.example/a.pdf"}, "caption": c * 200},
        {"type": "location", "latitude": 90.5, "longitude": 0},
        {"type": "location", "latitude": 0, "longitude": -180.01},
        {"type": "location", "latitude": "north", "longitude": 0},
        {"type": "contacts", "contacts": []},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": c}, "phones": []}]},
        {"type": "contacts", "contacts": [{"name": {}, "phones": [{"phone": "+15550100"}]}]},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"}, "phones": [{"phone": c}]}]},
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"},
                                           "phones": [{"phone": "+15550100"}]}] * 21},
        {"type": "reaction", "message_id": "msg_x", "emoji": c},
        {"type": "reaction", "message_id": "msg_x", "emoji": "👍", "reply_to": "msg_y"},
        {"type": "reaction", "message_id": "bad id " + c, "emoji": "👍"},
        {"type": "poll", "name": "q", "options": ["only"]},
        {"type": "poll", "name": "q", "options": [c, c]},
        {"type": "poll", "name": "q", "options": [f"o{i}" for i in range(13)]},
        {"type": "template", "name": "Has Spaces " + c, "language": "en_US"},
        {"type": "template", "name": "hello", "language": c},
        {"type": "template", "name": "hello", "language": "en", "components": [{"type": "body"}] * 11},
        {"type": "template", "name": "hello", "language": "en",
         "components": [{"type": "body", "parameters": [{"type": "text", "text": c * 400}]}]},
        {"type": "template", "name": "hello", "language": "en", "components": [{"type": c}]},
        {"type": "text", "text": "x", "provider": "meta"},
        {"type": "location", "latitude": 1, "longitude": 1, c: 1},
    ]
    for body in bad_422:
        assert_refused(await post(api, ws, body), 422)
    # checks that need the store or the guard: the stable code, still no echo
    for body, code in [
        ({"type": "image", "media": {"media_id": theirs["media_id"]}}, "media_not_found"),
        ({"type": "image", "media": {"media_id": "med_" + "0" * 24}}, "media_not_found"),
        ({"type": "image", "media": {"media_id": mine_doc["media_id"]}}, "media_type_not_allowed"),
        ({"type": "image", "media": {"url": f"http://10.0.0.1/{c}.png"}}, "egress_denied"),
        ({"type": "image", "media": {"url": f"file:///etc/{c}"}}, "egress_denied"),
        ({"type": "reaction", "message_id": "msg_0123456789abcdef", "emoji": "👍"}, "target_not_found"),
        ({"type": "text", "text": "x", "reply_to": "msg_0123456789abcdef"}, "target_not_found"),
        ({"type": "template", "name": "hello", "language": "en_US"}, "kind_not_supported"),
    ]:
        assert_refused(await post(api, ws, body), 422, code)
    malformed = await api.post(f"/v1/workspaces/{ws}/messages", content=b'{"type": "image", "media": ',
                               headers={"Content-Type": "application/json"})
    assert_refused(malformed, 400, "malformed_json")
    print(f"\n{len(bad_422) + 9} bad bodies refused with a 4xx, none echoed")


async def test_routing_by_kind_and_pinned_provider(api, cloud_sim) -> None:
    ws = f"kinds-route-{secrets.token_hex(3)}"
    pnid = str(720000 + secrets.randbelow(9999))
    cloud_sim.control.register_phone_number(pnid, "tok-kinds")
    await put_provider(api, ws, priority="meta", cloud=cloud_config(cloud_sim, pnid, "tok-kinds"))
    template = {"type": "template", "name": "order_update", "language": "en_US",
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}
    got = await accepted(api, ws, template)
    assert (got["provider"], got["type"], got["content"]) == ("meta", "template", {
        "name": "order_update", "language": "en_US",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]})

    await put_provider(api, ws, priority="meta", override="meta", cloud=cloud_config(cloud_sim, pnid, "tok-kinds"))

    async def poll_refused() -> bool:
        response = await post(api, ws, {"type": "poll", "name": "q", "options": ["a", "b"]})
        return response.status_code == 422 and response.json()["error"]["code"] == "kind_not_supported"

    assert await eventually(poll_refused, timeout=10)  # the ingress's provider snapshot may be a second old
    await put_provider(api, ws, priority="webjs", override="webjs", cloud=cloud_config(cloud_sim, pnid, "tok-kinds"))

    async def template_refused() -> bool:
        response = await post(api, ws, template)
        return response.status_code == 422 and response.json()["error"]["code"] == "kind_not_supported"

    assert await eventually(template_refused, timeout=10)
