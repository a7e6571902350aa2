"""The guarded client's pooled connections (wa_ray/egress_http.py `SocketStream`): httpcore's idle check still
sees a connection the server closed, so the next request opens a new one and succeeds; the stream answers
every other `get_extra_info` key as the backend's own does, over http and after TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from httpcore._utils import is_socket_readable

from tests.tls_certs import make_ca_and_server_cert
from wa_ray.egress import EgressDenied, EgressGuard, EgressPolicy, no_dns_resolver
from wa_ray.egress_http import GuardedBackend, GuardedClient, SocketStream

LOOPBACK_OK = EgressGuard(EgressPolicy.parse(["127.0.0.0/8"]), no_dns_resolver)


class Endpoint:
    """A loopback HTTP/1.1 endpoint answering 204 on kept-alive connections, which it can close at will."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.accepted = 0
        self._ssl = ssl_context
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Endpoint:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self.close_connections()
        self._server.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close_connections(self) -> None:
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
                await reader.readexactly(int(fields.get("content-length", "0")))
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Waits for something the kernel delivers (a FIN on loopback); the bound only stops a broken test."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    async with Endpoint() as endpoint, GuardedClient(LOOPBACK_OK, timeout=5) as client:
        first = await client.post(endpoint.url, content=b"{}")
        stream = first.extensions["network_stream"]
        assert isinstance(stream, SocketStream)
        assert stream.get_extra_info("is_readable") is False  # idle, nothing pending: kept for the next request
        assert (await client.post(endpoint.url, content=b"{}")).status_code == 204
        assert endpoint.accepted == 1

        endpoint.close_connections()
        sock = stream.get_extra_info("socket")
        await until(lambda: is_socket_readable(sock), "the client's socket sees the server's FIN")
        assert stream.get_extra_info("is_readable") is True
        # the pool drops the closed connection instead of writing the request into it
        assert (await client.post(endpoint.url, content=b"{}")).status_code == 204
        assert endpoint.accepted == 2


async def test_a_closed_stream_counts_as_readable() -> None:
    async with Endpoint() as endpoint:
        stream = await GuardedBackend(LOOPBACK_OK).connect_tcp("127.0.0.1", endpoint.port, timeout=5)
        await stream.aclose()
        # the socket is released by the event loop right after; from then on it reads as readable (dropped)
        await until(lambda: stream.get_extra_info("is_readable"), "the closed socket reads as readable")


async def test_other_keys_answer_as_the_backend_does_over_http() -> None:
    async with Endpoint() as endpoint, GuardedClient(LOOPBACK_OK, timeout=5) as client:
        stream = (await client.post(endpoint.url, content=b"{}")).extensions["network_stream"]
        assert isinstance(stream, SocketStream)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", endpoint.port)
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        assert stream.get_extra_info("ssl_object") is None
        assert stream.get_extra_info("socket").fileno() >= 0
        assert stream.get_extra_info("no such key") is None


async def test_a_tls_stream_keeps_the_idle_check_and_its_ssl_object(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    async with Endpoint(server_ctx) as endpoint:
        plain = await GuardedBackend(LOOPBACK_OK).connect_tcp("127.0.0.1", endpoint.port, timeout=5)
        tls = await plain.start_tls(client_ctx, server_hostname="localhost", timeout=5)
        try:
            assert isinstance(tls, SocketStream)
            assert isinstance(tls.get_extra_info("ssl_object"), ssl.SSLObject)
            assert tls.get_extra_info("server_addr") == ("127.0.0.1", endpoint.port)
            await tls.write(b"POST /hook HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", timeout=5)
            assert (await tls.read(1024, timeout=5)).startswith(b"HTTP/1.1 204")
            assert tls.get_extra_info("is_readable") is False
            endpoint.close_connections()
            await until(lambda: tls.get_extra_info("is_readable"), "the TLS connection's close reaches the client")
        finally:
            await tls.aclose()


async def test_a_refused_destination_still_never_connects() -> None:
    """The wrapper sits behind the guard: loopback without an operator CIDR is refused before any socket."""
    async with Endpoint() as endpoint:
        default = EgressGuard(EgressPolicy.parse([]), no_dns_resolver)
        with pytest.raises(EgressDenied):
            await GuardedBackend(default).connect_tcp("127.0.0.1", endpoint.port, timeout=5)
        async with GuardedClient(default, timeout=5) as client:
            with pytest.raises(EgressDenied):
                await client.post(endpoint.url, content=b"{}")
        assert endpoint.accepted == 0
