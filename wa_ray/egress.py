"""The egress guard: may the service connect to this URL on a tenant's say?

Every outbound request a tenant can aim (webhooks, the Cloud API base URL,
media URLs) is decided here; wa_ray/egress_http.py makes httpx connect only to
addresses this module passed. The decisions are pure: the only I/O is the
injected `Resolver`, so tests drive every case without a packet leaving the box.

Decisions, in order:

* URL: parsed with `httpx.URL`, the parser the sending client uses, so the
  check and the connection cannot disagree about the host. Only `http` and
  `https`, an absolute URL with a host. Userinfo (`http://a@host/`) is refused:
  a signed webhook needs no credentials in its URL, and `user@host` is the
  classic way to make a reader see a different host than the client does.
* Host: an IP literal in any form the system resolver accepts (`127.1`,
  `2130706433`, `0x7f000001`, `0177.0.0.1`, bracketed IPv6) is normalised to
  its address (`socket.inet_aton` semantics, what getaddrinfo applies) and no
  resolver is asked. `localhost` and `*.localhost` are loopback by name
  (RFC 6761) and stand for 127.0.0.1; the cloud metadata names are refused
  before any resolution. Any other name is resolved once, and every address it
  resolves to must pass: one denied address denies the name, since a mix of
  answers is how a rebinding attack hides its loopback address.
* Address (after unwrapping IPv4-mapped `::ffff:a.b.c.d` and IPv4-compatible
  `::a.b.c.d`, which reach the IPv4 host itself, and the NAT64 `64:ff9b::/96`,
  `64:ff9b:1::/48` and 6to4 `2002::/16` forms, which reach it through a
  gateway):
    - never allowed: unspecified, link-local (the metadata addresses among
      them, and the metadata addresses that are not link-local), multicast,
      reserved and broadcast;
    - loopback: only inside an operator CIDR;
    - private (every other non-global address: RFC 1918, CGNAT, ULA, ...):
      inside an operator CIDR, or when the URL's host name is an operator name;
    - global: allowed.
  A translated form (NAT64, 6to4) is allowed only when its IPv4 is global:
  the operator's allow-list names networks reached directly, not through a
  translator.
* Own listeners: a port of this service (HTTP, Redis, Ray) on loopback, on
  the unspecified address or on one of this host's own addresses is refused
  whatever the operator allows, so allowing loopback for a single-box backend
  never opens our own Redis or API to a tenant.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> every address the name resolves to (empty: it does not)
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

SCHEMES = frozenset({"http", "https"})
LOCALHOST = ipaddress.IPv4Address("127.0.0.1")
METADATA_NAMES = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal",
})
METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud (inside CGNAT space, not link-local)
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6 (inside ULA space, not link-local)
})
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host on this network": Linux reaches itself
_LEGACY_IPV4 = re.compile(r"^[0-9][0-9a-fA-FxX.]*$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


class Verdict(enum.Enum):
    """Why a destination is refused; the value is what an API error or a failure reason may say."""

    MALFORMED = "not an absolute http(s) URL"
    SCHEME = "scheme other than http or https"
    USERINFO = "credentials in the URL"
    UNRESOLVED = "host name does not resolve"
    LOOPBACK = "loopback address"
    UNSPECIFIED = "unspecified address"
    LINK_LOCAL = "link-local address"
    METADATA = "cloud metadata endpoint"
    MULTICAST = "multicast address"
    RESERVED = "reserved or broadcast address"
    PRIVATE = "private address not allowed by WA_EGRESS_ALLOW"
    TRANSLATED = "translated (NAT64/6to4) form of a non-public address"
    OWN_LISTENER = "one of this service's own listeners"


class EgressDenied(Exception):
    """A destination the guard refuses. Its text is our own words only, never the URL or an answer."""

    code = "egress_denied"

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"destination not allowed: {verdict.value}")
        self.verdict = verdict


@dataclass(frozen=True)
class Destination:
    """A URL that passed: where it goes, and the checked addresses a connection may use."""

    scheme: str
    host: str  # as written in the URL (Host header, TLS server name)
    port: int
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True)
class OwnListeners:
    """This service's listening ports, refused on loopback, unspecified and on the hosts listed."""

    ports: frozenset[int] = frozenset()
    hosts: frozenset[IPAddress] = frozenset()

    def covers(self, ip: IPAddress, port: int) -> bool:
        return port in self.ports and (ip.is_loopback or ip.is_unspecified or ip in self.hosts)


@dataclass(frozen=True)
class EgressPolicy:
    """The operator's allow-list (CIDRs and host names) and our own listeners."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()
    own: OwnListeners = field(default_factory=OwnListeners)

    @classmethod
    def parse(cls, entries: Iterable[str], own: OwnListeners | None = None) -> EgressPolicy:
        """`entries` as WA_EGRESS_ALLOW gives them: CIDRs or addresses, and host names. ValueError on junk."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry):
                raise ValueError(f"WA_EGRESS_ALLOW entry is neither a CIDR nor a host name: {raw!r}")
            names.add(entry)
        return cls(tuple(networks), frozenset(names), own or OwnListeners())

    def allows_network(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def split_allow(value: str | Iterable[str]) -> tuple[str, ...]:
    """WA_EGRESS_ALLOW's entries (comma- or space-separated); ValueError at startup for an entry that is
    neither a CIDR nor a host name, rather than an actor failing later."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    entries = tuple(i.strip() for i in items if i.strip())
    EgressPolicy.parse(entries)
    return entries


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL the guard may consider; EgressDenied for anything else."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise EgressDenied(Verdict.MALFORMED) from None
    if parsed.scheme not in SCHEMES:
        raise EgressDenied(Verdict.SCHEME if parsed.scheme else Verdict.MALFORMED)
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded: what the resolver and the Host header get
    if not host:
        raise EgressDenied(Verdict.MALFORMED)
    if parsed.userinfo:
        raise EgressDenied(Verdict.USERINFO)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise EgressDenied(Verdict.MALFORMED)
    return parsed.scheme, host, port


def literal_address(host: str) -> IPAddress | None:
    """The address an IP literal stands for, in any spelling the system resolver accepts; None for a name."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(candidate.split("%", 1)[0])  # a zone id does not change the address
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


def unwrap(ip: IPAddress) -> tuple[IPAddress, bool]:
    """(the IPv4 address an IPv6 form stands for, whether it goes through a translator); others unchanged."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip, False
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, False
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d, but not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), False
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), True
    if ip.sixtofour is not None:
        return ip.sixtofour, True
    return ip, False


def address_class(ip: IPAddress) -> Verdict | None:
    """The class that refuses an (unwrapped) address by default; None for a global address."""
    if ip in METADATA_ADDRESSES:
        return Verdict.METADATA
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return Verdict.UNSPECIFIED
    if ip.is_loopback:
        return Verdict.LOOPBACK
    if ip.is_link_local:
        return Verdict.LINK_LOCAL
    if ip.is_multicast:
        return Verdict.MULTICAST
    if ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
        return Verdict.RESERVED
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fec0::/10"):
        return Verdict.PRIVATE  # deprecated site-local
    if not ip.is_global:
        return Verdict.PRIVATE
    return None


def decide(policy: EgressPolicy, host: str, ip: IPAddress, port: int) -> Verdict | None:
    """Whether `ip` (what `host` gave) may be connected to on `port`; None when it may."""
    inner, translated = unwrap(ip)
    denied = address_class(inner)
    if translated:
        return Verdict.TRANSLATED if denied else None
    if denied not in (None, Verdict.LOOPBACK, Verdict.PRIVATE):
        return denied  # no operator setting opens these
    if policy.own.covers(inner, port) or policy.own.covers(ip, port):
        return Verdict.OWN_LISTENER
    if denied is None:
        return None
    if denied is Verdict.LOOPBACK and policy.allows_network(inner):
        return None
    if denied is Verdict.PRIVATE and (policy.allows_network(inner) or policy.allows_network(ip)
                                      or host.lower().rstrip(".") in policy.names):
        return None
    return denied


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """getaddrinfo through the event loop: what the system would connect to, every family."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


async def no_dns_resolver(host: str, port: int) -> list[IPAddress]:
    """For rigs that must not send a DNS query on a tenant's say (WA_EGRESS_DNS=false): no name resolves."""
    return []


class EgressGuard:
    """One policy and one resolver; `check` at write time, `addresses` at connect time."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolve = resolver

    async def check(self, url: str) -> Destination:
        """The whole decision for a URL: parse, resolve once, check every address. EgressDenied when refused."""
        scheme, host, port = parse_url(url)
        return Destination(scheme, host, port, tuple(await self.addresses(host, port)))

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a connection to host:port may use (all of them passed); EgressDenied otherwise."""
        name = host.lower().rstrip(".")
        literal = literal_address(host)
        if literal is not None:
            found = [literal]
        elif name in METADATA_NAMES:
            raise EgressDenied(Verdict.METADATA)
        elif name == "localhost" or name.endswith(".localhost"):
            found = [LOCALHOST]
        else:
            found = await self._resolve(host, port)
        if not found:
            raise EgressDenied(Verdict.UNRESOLVED)
        for ip in found:
            verdict = decide(self.policy, host, ip, port)
            if verdict is not None:
                raise EgressDenied(verdict)
        return found
