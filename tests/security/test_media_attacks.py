"""Attacks on the media routes of the running service, as a caller holding one workspace's key (or none):
reading another workspace's media, ids that try to leave the media directory, oversized and unsigned or
re-bodied uploads, files tampered with or swapped on disk, media urls aimed inside, and a redirect to a
denied address. Every refusal is a 4xx in the error shape; no refused request returns a byte of media."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wa_ray.actors.media_fetch import MediaFailure, media_for_send
from wa_ray.egress_http import GuardedClient, guard_for
from wa_ray.message_kinds import UPLOAD_MAX_BYTES, FailureCode
from wa_ray.simulator.cloud_api.testing import serve_in_thread
from wa_ray.storage import keys
from wa_ray.storage.media import CHUNK, HEADER
from wa_ray.sessions.media_access import media_store_for
from wa_ray.signing import signature_for_digest

SECRET_BYTES = b"%PDF-1.4 " + secrets.token_hex(16).encode()  # what must never reach another caller


@pytest.fixture
async def tenants(make_key, client_for):
    """Two workspaces, each with its own workspace key."""
    a, b = f"ma-{secrets.token_hex(3)}", f"mb-{secrets.token_hex(3)}"
    key_a = await make_key("workspace", a, rate_per_s=0)
    key_b = await make_key("workspace", b, rate_per_s=0)
    return (a, client_for(key_a), key_a), (b, client_for(key_b), key_b)


async def upload(client: httpx.AsyncClient, ws: str, data: bytes, mimetype: str = "application/pdf",
                 name: str = "invoice.pdf") -> httpx.Response:
    return await client.post(f"/v1/workspaces/{ws}/media", files={"file": (name, data, mimetype)})


def media_file(service, ws: str, media_id: str) -> Path:
    return Path(service.config.data_dir) / "media" / ws / media_id


def files(service, ws: str) -> set[str]:
    directory = Path(service.config.data_dir) / "media" / ws
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    assert SECRET_BYTES not in response.content


async def test_upload_and_read_back_in_own_workspace_only(service, tenants, make_key, client_for) -> None:
    (a, client_a, _), (b, client_b, _) = tenants
    up = await upload(client_a, a, SECRET_BYTES)
    assert up.status_code == 201, up.text
    info = up.json()
    assert set(info) == {"media_id", "mimetype", "filename", "size", "sha256", "expires_at"}
    assert (info["mimetype"], info["filename"], info["size"], info["sha256"]) == (
        "application/pdf", "invoice.pdf", len(SECRET_BYTES), hashlib.sha256(SECRET_BYTES).hexdigest())
    got = await client_a.get(f"/v1/workspaces/{a}/media/{info['media_id']}")
    assert got.status_code == 200 and got.content == SECRET_BYTES
    assert got.headers["content-type"] == "application/pdf" and got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment")
    # at rest: encrypted, 0600
    path = media_file(service, a, info["media_id"])
    assert SECRET_BYTES not in path.read_bytes() and (path.stat().st_mode & 0o777) == 0o600

    # B's key: B's own workspace path -> 404; A's workspace path -> 404 (not 403: nothing leaks)
    assert_error(await client_b.get(f"/v1/workspaces/{b}/media/{info['media_id']}"), 404, "not_found")
    assert_error(await client_b.get(f"/v1/workspaces/{a}/media/{info['media_id']}"), 404, "not_found")
    # ... nor can B send it
    sent = await client_b.post(f"/v1/workspaces/{b}/messages", json={
        "to": "15554440001", "type": "document", "media": {"media_id": info["media_id"]}})
    assert_error(sent, 422, "media_not_found")
    assert info["media_id"] not in sent.text
    # a read-only key of A may read but not upload
    reader = client_for(await make_key("read", a, rate_per_s=0))
    assert (await reader.get(f"/v1/workspaces/{a}/media/{info['media_id']}")).content == SECRET_BYTES
    assert_error(await upload(reader, a, b"x", "text/plain"), 403, "forbidden")


async def test_path_traversal_ids_find_nothing(service, tenants) -> None:
    (a, client_a, _), _ = tenants
    info = (await upload(client_a, a, SECRET_BYTES)).json()
    mid = info["media_id"]
    attempts = [
        f"/v1/workspaces/{a}/media/..%2F..%2Fmaster.key",
        f"/v1/workspaces/{a}/media/%2e%2e",
        f"/v1/workspaces/{a}/media/..%2F{a}%2F{mid}",
        f"/v1/workspaces/{a}/media/{mid}%00",
        f"/v1/workspaces/{a}/media/{mid}.part",
        f"/v1/workspaces/{a}/media/{mid.upper()}",
        f"/v1/workspaces/{a}/media/{'a' * 300}",
        f"/v1/workspaces/..%2F{a}/media/{mid}",
        f"/v1/workspaces/{a}/media/%2Fetc%2Fpasswd",
    ]
    for path in attempts:
        response = await client_a.get(path)
        assert response.status_code in (401, 403, 404), (path, response.status_code)
        assert SECRET_BYTES not in response.content and b"root:" not in response.content
    print(f"\n{len(attempts)} traversal ids refused")


async def test_unsigned_and_rebodied_uploads_store_nothing(service, tenants, raw, live_redis) -> None:
    (a, client_a, key_a), _ = tenants
    before = set(await live_redis.keys(keys.media(a, "*")))
    files_before = files(service, a)
    unsigned = await raw.post(f"/v1/workspaces/{a}/media", files={"file": ("x.pdf", SECRET_BYTES, "application/pdf")})
    assert_error(unsigned, 401, "unauthenticated")

    # signed for one body, sent with another (same length): the declared digest does not match
    signed_body = SECRET_BYTES
    swapped = bytes(b ^ 1 for b in SECRET_BYTES)
    boundary = "b" + secrets.token_hex(8)

    def form(data: bytes) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pdf\"\r\n"
                f"Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()

    path = f"/v1/workspaces/{a}/media"
    digest = hashlib.sha256(form(signed_body)).hexdigest()
    ts, nonce = str(int(time.time())), secrets.token_hex(12)
    headers = {"X-Key-Id": key_a.key_id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Content-SHA256": digest,
               "X-Signature": signature_for_digest(key_a.secret, ts, nonce, "POST", path, digest),
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert_error(await raw.post(path, content=form(swapped), headers=headers), 403, "bad_signature")
    # a signature over a digest that is not the one declared
    headers2 = {**headers, "X-Nonce": secrets.token_hex(12), "X-Content-SHA256": hashlib.sha256(b"x").hexdigest()}
    assert_error(await raw.post(path, content=form(signed_body), headers=headers2), 403, "bad_signature")
    # no declared digest at all
    headers3 = {k: v for k, v in headers.items() if k != "X-Content-SHA256"} | {"X-Nonce": secrets.token_hex(12)}
    assert_error(await raw.post(path, content=form(signed_body), headers=headers3), 401, "unauthenticated")
    assert set(await live_redis.keys(keys.media(a, "*"))) == before  # nothing stored
    assert files(service, a) == files_before


async def test_oversized_upload_is_413(service, tenants) -> None:
    (a, _, key_a), _ = tenants
    path = f"/v1/workspaces/{a}/media"
    boundary = "b" + secrets.token_hex(8)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = b"\0" * (1024 * 1024)
    blocks = UPLOAD_MAX_BYTES // len(block) + 2

    def parts():
        yield head
        for _ in range(blocks):
            yield block
        yield tail

    digest = hashlib.sha256()
    for part in parts():
        digest.update(part)
    ts, nonce = str(int(time.time())), secrets.token_hex(12)
    headers = {"X-Key-Id": key_a.key_id, "X-Timestamp": ts, "X-Nonce": nonce, "X-Content-SHA256": digest.hexdigest(),
               "X-Signature": signature_for_digest(key_a.secret, ts, nonce, "POST", path, digest.hexdigest()),
               "Content-Type": f"multipart/form-data; boundary={boundary}"}

    async def streamed() -> AsyncIterator[bytes]:  # chunked, no Content-Length: the server must count
        for part in parts():
            yield part

    async with httpx.AsyncClient(base_url=service.base_url, timeout=120) as client:
        try:
            response = await client.post(path, content=streamed(), headers=headers)
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            response = None  # the server answered and closed while we were still sending: also refused
        if response is not None:
            assert_error(response, 413, "body_too_large")
        # a declared Content-Length over the limit is refused before a byte of the body is read
        reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(service.base_url).port)
        writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {UPLOAD_MAX_BYTES * 2}\r\n"
                      f"Content-Type: multipart/form-data; boundary=x\r\n\r\n").encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        assert status_line.split()[1] == b"413", status_line
    assert files(service, a) == set()  # nothing left behind, not even a .part


async def test_tampered_and_swapped_files_fail_closed(service, tenants) -> None:
    (a, client_a, _), _ = tenants
    big = SECRET_BYTES * ((2 * CHUNK) // len(SECRET_BYTES) + 1)  # three chunks
    one = (await upload(client_a, a, big)).json()["media_id"]
    path = media_file(service, a, one)
    blob = bytearray(path.read_bytes())
    blob[HEADER + 5] ^= 1  # first chunk
    path.write_bytes(bytes(blob))
    assert_error(await client_a.get(f"/v1/workspaces/{a}/media/{one}"), 410, "media_unreadable")

    two = (await upload(client_a, a, big)).json()["media_id"]
    path = media_file(service, a, two)
    blob = bytearray(path.read_bytes())
    blob[HEADER + CHUNK + 16 + 5] ^= 1  # second chunk: the first may go out, the rest never does
    path.write_bytes(bytes(blob))
    received = b""
    with pytest.raises(httpx.HTTPError):
        async with client_a.stream("GET", f"/v1/workspaces/{a}/media/{two}") as response:
            async for piece in response.aiter_bytes():
                received += piece
    assert len(received) <= CHUNK < len(big)

    # A's secret copied over another media file of A: read under the other id, it does not authenticate
    secret_id = (await upload(client_a, a, SECRET_BYTES)).json()["media_id"]
    decoy_id = (await upload(client_a, a, b"%PDF-1.4 decoy")).json()["media_id"]
    media_file(service, a, decoy_id).write_bytes(media_file(service, a, secret_id).read_bytes())
    assert_error(await client_a.get(f"/v1/workspaces/{a}/media/{decoy_id}"), 410, "media_unreadable")
    assert (await client_a.get(f"/v1/workspaces/{a}/media/{secret_id}")).content == SECRET_BYTES


async def test_file_moved_to_another_workspace_fails(service, tenants) -> None:
    (a, client_a, _), (b, client_b, _) = tenants
    secret_id = (await upload(client_a, a, SECRET_BYTES)).json()["media_id"]
    theirs = (await upload(client_b, b, b"%PDF-1.4 b's own")).json()["media_id"]
    media_file(service, b, theirs).write_bytes(media_file(service, a, secret_id).read_bytes())
    assert_error(await client_b.get(f"/v1/workspaces/{b}/media/{theirs}"), 410, "media_unreadable")


async def test_media_urls_aimed_inside_are_refused_at_accept(service, tenants) -> None:
    (a, client_a, _), _ = tenants
    api_port = urlsplit(service.base_url).port
    redis_port = urlsplit(service.config.redis_url).port or 6379
    urls = [f"http://127.0.0.1:{redis_port}/x.png", f"http://localhost:{api_port}/x.png",
            "http://169.254.169.254/latest/meta-data/x.png", "http://10.0.0.1/x.png", "http://[::]/x.png",
            "file:///etc/passwd", f"http://evil@127.0.0.1:{api_port}/x.png", "http://media.example/x.png"]
    for url in urls:
        response = await client_a.post(f"/v1/workspaces/{a}/messages", json={
            "to": "15554440001", "type": "image", "media": {"url": url}})
        assert_error(response, 422, "egress_denied")
        host = urlsplit(url).hostname or url
        assert url not in response.text and host not in response.text
    print(f"\n{len(urls)} media urls refused at accept")


async def test_redirect_to_a_denied_address_is_not_followed(service, live_redis) -> None:
    """The sender's fetch with the service's own guard (its allow-list, its listeners): the 302 is an answer,
    never a second destination, and the loopback endpoint is the only thing contacted."""
    hits: list[str] = []

    async def answer(request: Request) -> Response:
        hits.append(request.url.path)
        return Response(status_code=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    store = media_store_for(live_redis, service.config)
    with serve_in_thread(Starlette(routes=[Route("/{p:path}", answer)])) as served:
        async with GuardedClient(guard_for(service.config), timeout=10) as client:
            with pytest.raises(MediaFailure) as failed:
                await media_for_send(store, "mr-redirect", "image", {"url": served.url + "/a.png"}, client)
    assert failed.value.code == FailureCode.MEDIA_FETCH_FAILED and "3xx" in failed.value.reason
    assert "169.254" not in failed.value.reason and hits == ["/a.png"]
    assert files(service, "mr-redirect") == set()


async def test_large_upload_streams_through_and_back(service, tenants) -> None:
    """A 20 MB document goes through the proxy, the middleware and the store in pieces and comes back whole."""
    (a, client_a, _), _ = tenants
    data = os.urandom(20 * 1024 * 1024)
    up = await upload(client_a, a, data, "application/pdf", "big.pdf")
    assert up.status_code == 201, up.text
    info = up.json()
    assert (info["size"], info["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    digest, size = hashlib.sha256(), 0
    async with client_a.stream("GET", f"/v1/workspaces/{a}/media/{info['media_id']}") as response:
        assert response.status_code == 200 and int(response.headers["content-length"]) == len(data)
        async for piece in response.aiter_bytes():
            digest.update(piece)
            size += len(piece)
    assert (size, digest.hexdigest()) == (len(data), info["sha256"])
