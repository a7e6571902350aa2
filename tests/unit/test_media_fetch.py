"""media_for_send against a loopback HTTP server this test owns, through the real egress guard: a media id
is looked up in its workspace; a url is streamed into the store, capped at the kind's limit, type-checked,
never followed through a redirect; every refusal a MediaFailure with a stable code and no url in it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from wa_ray.actors.media_fetch import MediaFailure, media_for_send
from wa_ray.egress import EgressGuard, EgressPolicy, no_dns_resolver
from wa_ray.egress_http import GuardedClient
from wa_ray.message_kinds import MB, FailureCode, Kind
from wa_ray.simulator.cloud_api.testing import serve_in_thread
from wa_ray.storage.media import MediaStore
from wa_ray.storage.messages import MessageStore, OutboundMessage, content_of

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)


@dataclass
class Server:
    url: str = ""
    hits: list[str] = field(default_factory=list)


def _app(server: Server) -> Starlette:
    async def png(request: Request) -> Response:
        server.hits.append(request.url.path)
        return Response(PNG, media_type="image/png")

    async def octet(request: Request) -> Response:
        server.hits.append(request.url.path)
        return Response(PNG, media_type="application/octet-stream")

    async def html(request: Request) -> Response:
        return Response(b"<html></html>", media_type="text/html")

    async def huge(request: Request) -> StreamingResponse:
        async def body():  # no Content-Length: the cap must stop the read itself
            for _ in range(8):
                yield os.urandom(MB)
        return StreamingResponse(body(), media_type="image/jpeg")

    async def redirect(request: Request) -> Response:
        server.hits.append(request.url.path)
        return Response(status_code=302, headers={"Location": "http://10.0.0.1/secret.png"})

    async def missing(request: Request) -> Response:
        return Response(b"nope", status_code=404)

    return Starlette(routes=[Route("/a.png", png), Route("/octet", octet), Route("/page", html),
                             Route("/huge", huge), Route("/redirect", redirect), Route("/missing", missing)])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    with serve_in_thread(_app(srv)) as served:
        srv.url = served.url
        yield srv


LOOPBACK_OK = EgressGuard(EgressPolicy.parse(["127.0.0.0/8"]), no_dns_resolver)
DEFAULT = EgressGuard(EgressPolicy.parse([]), no_dns_resolver)  # loopback denied, as in production


@pytest.fixture
def store(redis, tmp_path: Path) -> MediaStore:
    return MediaStore(redis, tmp_path, [("0000aaaa", os.urandom(32))])


async def failure(store: MediaStore, kind: Kind, content: dict, guard: EgressGuard = LOOPBACK_OK) -> MediaFailure:
    async with GuardedClient(guard, timeout=10) as client:
        with pytest.raises(MediaFailure) as caught:
            await media_for_send(store, "acme", kind, content, client)
    assert "127.0.0.1" not in caught.value.reason and "10.0.0.1" not in caught.value.reason
    return caught.value


async def test_url_is_fetched_into_the_store(store: MediaStore, server: Server) -> None:
    async with GuardedClient(LOOPBACK_OK, timeout=10) as client:
        info = await media_for_send(store, "acme", Kind.IMAGE, {"url": server.url + "/a.png"}, client)
    assert (info.mimetype, info.size) == ("image/png", len(PNG))
    assert b"".join([c async for c in store.chunks("acme", info.media_id)]) == PNG


async def test_octet_stream_image_is_sniffed_and_guard_alone_works(store: MediaStore, server: Server) -> None:
    info = await media_for_send(store, "acme", "image", {"url": server.url + "/octet"}, LOOPBACK_OK)
    assert info.mimetype == "image/png"
    doc = await media_for_send(store, "acme", "document", {"url": server.url + "/octet"}, LOOPBACK_OK)
    assert (doc.mimetype, doc.filename) == ("application/octet-stream", "octet")


async def test_a_fetched_copy_that_expired_is_fetched_again(store: MediaStore, server: Server) -> None:
    content = {"media_id": "med_" + "0" * 24, "url": server.url + "/a.png"}  # set_media'd, then swept
    info = await media_for_send(store, "acme", Kind.IMAGE, content, LOOPBACK_OK)
    assert info.media_id != content["media_id"] and info.size == len(PNG)


async def test_media_id_of_this_workspace_only(store: MediaStore) -> None:
    info = await store.put_bytes("acme", PNG, mimetype="image/png")
    async with GuardedClient(DEFAULT) as client:
        assert await media_for_send(store, "acme", Kind.IMAGE, {"media_id": info.media_id}, client) == info
        with pytest.raises(MediaFailure) as other:
            await media_for_send(store, "evil", Kind.IMAGE, {"media_id": info.media_id}, client)
    assert other.value.code == FailureCode.MEDIA_NOT_FOUND
    assert (await failure(store, Kind.STICKER, {"media_id": info.media_id})).code == FailureCode.MEDIA_TYPE_NOT_ALLOWED
    assert (await failure(store, Kind.IMAGE, {"media_id": "med_missing"})).code == FailureCode.MEDIA_NOT_FOUND


async def test_refusals_have_stable_codes(store: MediaStore, server: Server) -> None:
    cases = [
        (Kind.IMAGE, "/page", FailureCode.MEDIA_TYPE_NOT_ALLOWED),
        (Kind.IMAGE, "/huge", FailureCode.MEDIA_TOO_LARGE),
        (Kind.IMAGE, "/missing", FailureCode.MEDIA_FETCH_FAILED),
        (Kind.STICKER, "/a.png", FailureCode.MEDIA_TYPE_NOT_ALLOWED),
    ]
    for kind, path, code in cases:
        assert (await failure(store, kind, {"url": server.url + path})).code == code, path
    denied = await failure(store, Kind.IMAGE, {"url": server.url + "/a.png"}, DEFAULT)
    assert denied.code == FailureCode.EGRESS_DENIED
    assert list(Path(store._root).glob("acme/*")) == []  # nothing half-written is left


async def test_redirect_is_never_followed(store: MediaStore, server: Server) -> None:
    before = list(server.hits)
    failed = await failure(store, Kind.IMAGE, {"url": server.url + "/redirect"})
    assert failed.code == FailureCode.MEDIA_FETCH_FAILED and "3xx" in failed.reason
    assert server.hits[len(before):] == ["/redirect"]


async def test_set_media_is_kept_for_retries(redis) -> None:
    messages = MessageStore(redis)
    content = {"media_id": None, "url": "https://example.com/a.png", "caption": "hi", "filename": None}
    await messages.accept(OutboundMessage("msg_m", "acme", "main", "15550002", "hi", "normal", kind="image",
                                          content=content), None)
    assert await messages.set_media("acme", "msg_m", "med_abc")
    kind, stored = content_of(await messages.record("acme", "msg_m"))
    assert (kind, stored) == ("image", {**content, "media_id": "med_abc"})
    assert not await messages.set_media("acme", "msg_gone", "med_abc")
