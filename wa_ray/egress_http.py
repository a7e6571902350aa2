"""httpx wired to the egress guard: a connection goes only to an address the guard checked.

`GuardedBackend` is an httpcore network backend whose `connect_tcp(host, port)`
asks the guard for the host's addresses (resolved once, every one checked) and
connects to one of those addresses itself, so the name is never resolved a
second time between the check and the connect (no DNS rebinding). httpcore
still sends the URL's host in the Host header and as the TLS server name, and
the SSL context verifies the certificate against that name: https to a
checked address is still https to that host.

Each connection's stream is a `SocketStream`: the backend's own stream, with
httpcore's idle check (`get_extra_info("is_readable")`, asked of every pooled
connection at every request and every response close) answered by a poll of
the socket looked up once at connect, instead of a fresh attribute lookup
through anyio each time; every other call goes to the backend's stream.

`GuardedClient` is how our code builds an httpx client for a destination a
tenant named. Every request's URL goes through `parse_url` (http(s) only, no
userinfo) before it is sent, and:

* `follow_redirects=False`: a 3xx is an answer (reported as its status class),
  never a second destination;
* `trust_env=False`: an `HTTP(S)_PROXY` variable would make the proxy the
  address connected to and bypass the check;
* certificates are always verified.

A refusal surfaces as `EgressDenied` from the request: httpx re-raises
exceptions that are not httpcore's unchanged.

`guard_for(config)` builds the service's guard: the operator's allow-list,
`WA_EGRESS_DNS`, and our own listeners (the HTTP port, Redis, Ray's GCS,
dashboard, client and agent ports) on loopback, the unspecified address and
this host's interface addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import sys
import typing
from urllib.parse import urlsplit

import httpcore
import httpx
# httpcore's own idle check, called on the socket we hold (private module: httpcore is pinned in pyproject)
from httpcore._utils import is_socket_readable

from wa_ray.egress import (
    EgressGuard,
    EgressPolicy,
    IPAddress,
    OwnListeners,
    literal_address,
    no_dns_resolver,
    parse_url,
    split_allow,
    system_resolver,
)
from wa_ray.runtime import RuntimeConfig

# Ray's fixed default ports: GCS, dashboard, Ray client server, dashboard agent.
RAY_PORTS = frozenset({6379, 8265, 10001, 52365})


class SocketStream(httpcore.AsyncNetworkStream):
    """A backend's stream, answering `is_readable` from its socket (looked up once) and all else through it."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        # the object httpcore's AnyIO backend looks up at each call; a backend without one answers for itself
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return SocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the guard returned for (host, port); never resolves again."""

    def __init__(self, guard: EgressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._guard.addresses(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        last: Exception = httpcore.ConnectError("no address")
        for ip in addresses:  # each one passed the guard; the first that answers is used
            try:
                return SocketStream(await self._inner.connect_tcp(str(ip), port, timeout=timeout,
                                                                  local_address=local_address,
                                                                  socket_options=socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not an egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its error mapping, its request/response plumbing) over a guarded pool."""

    def __init__(self, guard: EgressGuard, limits: httpx.Limits = httpx.Limits()) -> None:
        super().__init__(verify=True, trust_env=False, limits=limits)
        # replaces the pool the parent built: the same settings plus our network backend
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=True, trust_env=False),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=GuardedBackend(guard),
        )


class GuardedClient(httpx.AsyncClient):
    """An httpx client that can only reach what the guard allows (see the module docstring)."""

    def __init__(self, guard: EgressGuard, *, limits: httpx.Limits = httpx.Limits(), **kwargs: typing.Any) -> None:
        # httpx logs each request's full URL at INFO, and a tenant's URL may carry its own credentials
        # (`?token=`): in a process that talks to tenants' URLs, httpx says only what went wrong.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        super().__init__(transport=GuardedTransport(guard, limits), follow_redirects=False, trust_env=False,
                         **kwargs)
        self.guard = guard

    async def send(self, request: httpx.Request, **kwargs: typing.Any) -> httpx.Response:  # type: ignore[override]
        parse_url(str(request.url))
        kwargs["follow_redirects"] = False
        return await super().send(request, **kwargs)


def status_class(status: int) -> str:
    """What may be said about a tenant-named endpoint's answer: its class, never the code or the body."""
    return f"{status // 100}xx" if 100 <= status < 600 else "invalid"


def guard_for(config: RuntimeConfig) -> EgressGuard:
    """The service's guard for this process (its own interfaces, the Ray cluster it is in)."""
    policy = EgressPolicy.parse(split_allow(config.egress_allow), own_listeners(config))
    return EgressGuard(policy, system_resolver if config.egress_dns else no_dns_resolver)


def own_listeners(config: RuntimeConfig) -> OwnListeners:
    ports = set(RAY_PORTS) | {config.http_port, config.dashboard_port}
    hosts: set[IPAddress] = set(_interface_addresses())
    for host, port in (*_redis_servers(config.redis_url), _ray_gcs()):
        if port:
            ports.add(port)
        ip = literal_address(host) if host else None
        if ip is not None:
            hosts.add(ip)
    return OwnListeners(frozenset(ports), frozenset(hosts))


def _redis_servers(url: str) -> list[tuple[str, int | None]]:
    """Every Redis server the URL names: one, or each node a `redis+cluster://h1:p1,h2:p2` URL lists
    (storage/redis_client.py; list all of a cluster's nodes there so that the guard denies each)."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("redis+cluster", "rediss+cluster"):
        return [_host_port(url, 6379)]
    hosts = urlsplit("redis://" + rest).netloc.rpartition("@")[2]
    return [_host_port("redis://" + host, 6379) for host in hosts.split(",") if host]


def _host_port(url: str, default_port: int) -> tuple[str, int | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return "", None  # a unix socket is no TCP destination
    try:
        return parts.hostname or "", parts.port or default_port
    except ValueError:
        return parts.hostname or "", default_port


def _ray_gcs() -> tuple[str, int | None]:
    """The GCS address of the Ray cluster this process is in; Ray is not imported where it is not loaded."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return "", None
    try:
        host, _, port = str(ray.get_runtime_context().gcs_address).rpartition(":")
        return host, int(port)
    except (AttributeError, ValueError):
        return "", None


def _interface_addresses() -> list[IPAddress]:
    import psutil

    found: list[IPAddress] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.append(ipaddress.ip_address(a.address.split("%", 1)[0]))
                except ValueError:
                    continue
    return found
