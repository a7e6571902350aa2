"""The egress guard's decisions (wa_ray/egress.py) and its httpx wiring (wa_ray/egress_http.py).

Names are resolved by resolvers the tests inject: no test here asks DNS anything, and the only real
connections go to loopback listeners the test itself opens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from wa_ray.egress import (
    EgressDenied,
    EgressGuard,
    EgressPolicy,
    IPAddress,
    OwnListeners,
    Verdict,
    literal_address,
    no_dns_resolver,
    split_allow,
)
from wa_ray.egress_http import GuardedClient, guard_for, own_listeners, status_class
from wa_ray.runtime import RuntimeConfig

PUBLIC = "93.184.216.34"  # never connected to: only ever a resolver's answer in a decision


def fixed(table: dict[str, list[str]]):
    """A resolver that answers from a table (and records what it was asked)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in table.get(host, [])]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def guard(allow: str = "", own: OwnListeners | None = None, table: dict[str, list[str]] | None = None) -> EgressGuard:
    return EgressGuard(EgressPolicy.parse(split_allow(allow), own), fixed(table or {}))


async def verdict(g: EgressGuard, url: str) -> Verdict | None:
    try:
        await g.check(url)
    except EgressDenied as denied:
        return denied.verdict
    return None


# ------------------------------------------------------------------------------------------- decisions
LITERAL_TRICKS = [
    ("http://127.0.0.1:6379/", Verdict.LOOPBACK),
    ("http://127.1/", Verdict.LOOPBACK),
    ("http://2130706433/", Verdict.LOOPBACK),
    ("http://0x7f000001/", Verdict.LOOPBACK),
    ("http://0177.0.0.1/", Verdict.MALFORMED),  # octal with leading zeros: httpx refuses to parse it at all
    ("http://127.000.000.001/", Verdict.MALFORMED),
    ("http://127.8.9.10:8265/", Verdict.LOOPBACK),
    ("http://[::1]/", Verdict.LOOPBACK),
    ("http://[::ffff:127.0.0.1]/", Verdict.LOOPBACK),
    ("http://[::ffff:7f00:1]/", Verdict.LOOPBACK),
    ("http://[::127.0.0.1]/", Verdict.LOOPBACK),
    ("http://0.0.0.0:8000/", Verdict.UNSPECIFIED),
    ("http://0/", Verdict.UNSPECIFIED),
    ("http://0.1.2.3/", Verdict.UNSPECIFIED),
    ("http://[::]/", Verdict.UNSPECIFIED),
    ("http://169.254.169.254/latest/meta-data/", Verdict.METADATA),
    ("http://2852039166/", Verdict.METADATA),  # 169.254.169.254 as one number
    ("http://[::ffff:169.254.169.254]/", Verdict.METADATA),
    ("http://[fd00:ec2::254]/", Verdict.METADATA),
    ("http://100.100.100.200/", Verdict.METADATA),
    ("http://169.254.1.1/", Verdict.LINK_LOCAL),
    ("http://[fe80::1]/", Verdict.LINK_LOCAL),
    ("http://[fe80::1%25eth0]/", Verdict.LINK_LOCAL),
    ("http://224.0.0.1/", Verdict.MULTICAST),
    ("http://[ff02::1]/", Verdict.MULTICAST),
    ("http://255.255.255.255/", Verdict.RESERVED),
    ("http://240.0.0.1/", Verdict.RESERVED),
    ("http://10.0.0.5/", Verdict.PRIVATE),
    ("http://172.16.3.4/", Verdict.PRIVATE),
    ("http://192.168.1.10/", Verdict.PRIVATE),
    ("http://100.64.0.1/", Verdict.PRIVATE),
    ("http://[fd12:3456::1]/", Verdict.PRIVATE),
    ("http://[::ffff:10.0.0.5]/", Verdict.PRIVATE),
    ("http://[64:ff9b::7f00:1]/", Verdict.TRANSLATED),  # NAT64 of 127.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", Verdict.TRANSLATED),  # NAT64 of the metadata address
    ("http://[64:ff9b:1::a00:5]/", Verdict.TRANSLATED),  # local-use NAT64 of 10.0.0.5
    ("http://[2002:7f00:1::1]/", Verdict.TRANSLATED),  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize(("url", "expected"), LITERAL_TRICKS)
async def test_literal_tricks_are_normalised_and_denied(url: str, expected: Verdict) -> None:
    g = guard(table={})
    assert await verdict(g, url) is expected
    assert g._resolve.asked == []  # type: ignore[attr-defined]  # a literal is never looked up


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "https://[2606:2800:220:1::]/", "http://1572395042/",
                                 "http://[64:ff9b::5db8:d822]/", "http://[::ffff:93.184.216.34]/"])
async def test_public_addresses_pass(url: str) -> None:
    assert await verdict(guard(), url) is None


@pytest.mark.parametrize(("url", "expected"), [
    ("file:///etc/passwd", Verdict.SCHEME), ("gopher://127.0.0.1:6379/_INFO", Verdict.SCHEME),
    ("ftp://93.184.216.34/", Verdict.SCHEME), ("dict://127.0.0.1:6379/info", Verdict.SCHEME),
    ("ws://93.184.216.34/", Verdict.SCHEME), ("//93.184.216.34/", Verdict.MALFORMED),
    ("http://", Verdict.MALFORMED), ("http:/127.0.0.1", Verdict.MALFORMED), ("not a url", Verdict.MALFORMED),
    ("http://93.184.216.34:99999/", Verdict.MALFORMED), ("http://[::1/", Verdict.MALFORMED),
])
async def test_only_absolute_http_urls(url: str, expected: Verdict) -> None:
    assert await verdict(guard(), url) is expected


@pytest.mark.parametrize("url", ["http://evil@127.0.0.1/", "http://user:pw@93.184.216.34/",
                                 "http://93.184.216.34@127.0.0.1:6379/", "http://127.0.0.1\\@93.184.216.34/"])
async def test_userinfo_is_refused(url: str) -> None:
    assert await verdict(guard(allow="127.0.0.0/8"), url) is Verdict.USERINFO


async def test_names_that_are_never_resolved() -> None:
    g = guard(table={"metadata.google.internal": [PUBLIC]})
    for url in ("http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./",
                "http://metadata/", "http://instance-data/latest/"):
        assert await verdict(g, url) is Verdict.METADATA
    for url in ("http://localhost:6379/", "http://LocalHost./", "http://api.localhost/"):
        assert await verdict(g, url) is Verdict.LOOPBACK
    assert g._resolve.asked == []  # type: ignore[attr-defined]


async def test_every_resolved_address_must_pass() -> None:
    g = guard(table={"mixed.example": [PUBLIC, "127.0.0.1"], "meta.example": ["169.254.169.254"],
                     "v6.example": [PUBLIC, "::ffff:127.0.0.1"], "ok.example": [PUBLIC, "2606:2800:220:1::"]})
    assert await verdict(g, "http://mixed.example/") is Verdict.LOOPBACK
    assert await verdict(g, "http://meta.example/") is Verdict.METADATA
    assert await verdict(g, "http://v6.example/") is Verdict.LOOPBACK
    assert await verdict(g, "http://nowhere.example/") is Verdict.UNRESOLVED
    checked = await g.check("https://ok.example/hook")
    assert (checked.host, checked.port, [str(a) for a in checked.addresses]) == (
        "ok.example", 443, [PUBLIC, "2606:2800:220:1::"])


async def test_private_ranges_only_through_the_operator_allow_list() -> None:
    table = {"backend.internal": ["10.1.2.3"], "other.internal": ["10.1.2.3"], "lo.internal": ["127.0.0.1"]}
    assert await verdict(guard(table=table), "http://backend.internal/") is Verdict.PRIVATE
    by_cidr = guard(allow="10.0.0.0/8, fd00::/8", table=table)
    assert await verdict(by_cidr, "http://10.9.9.9/") is None
    assert await verdict(by_cidr, "http://other.internal/") is None
    assert await verdict(by_cidr, "http://[fd12::1]/") is None
    assert await verdict(by_cidr, "http://[::ffff:10.9.9.9]/") is None
    assert await verdict(by_cidr, "http://192.168.1.1/") is Verdict.PRIVATE
    by_name = guard(allow="Backend.Internal.", table=table)
    assert await verdict(by_name, "http://backend.internal/") is None
    assert await verdict(by_name, "http://other.internal/") is Verdict.PRIVATE  # same address, other name
    assert await verdict(by_name, "http://lo.internal/") is Verdict.LOOPBACK  # a name never allows loopback
    assert await verdict(by_name, "http://10.1.2.3/") is Verdict.PRIVATE


async def test_what_no_operator_setting_opens() -> None:
    g = guard(allow="0.0.0.0/0, ::/0, metadata.google.internal")
    assert await verdict(g, "http://10.0.0.1/") is None and await verdict(g, "http://127.0.0.1/") is None
    for url, expected in [("http://169.254.169.254/", Verdict.METADATA), ("http://169.254.1.1/", Verdict.LINK_LOCAL),
                          ("http://0.0.0.0/", Verdict.UNSPECIFIED), ("http://[::]/", Verdict.UNSPECIFIED),
                          ("http://224.0.0.1/", Verdict.MULTICAST), ("http://[ff02::1]/", Verdict.MULTICAST),
                          ("http://[fe80::1]/", Verdict.LINK_LOCAL), ("http://metadata.google.internal/", Verdict.METADATA),
                          ("http://[64:ff9b::7f00:1]/", Verdict.TRANSLATED)]:
        assert await verdict(g, url) is expected, url


async def test_loopback_only_by_cidr_and_never_our_own_listeners() -> None:
    own = OwnListeners(frozenset({8000, 6379, 8265, 41234}), frozenset({ipaddress.ip_address("10.0.0.5")}))
    g = guard(allow="127.0.0.0/8, ::1, 10.0.0.0/8", own=own)
    assert await verdict(g, "http://127.0.0.1:9000/hook") is None
    assert await verdict(g, "http://localhost:9000/hook") is None
    assert await verdict(g, "http://[::1]:9000/hook") is None
    for url in ("http://127.0.0.1:6379/", "http://127.0.0.1:8000/v1/keys", "http://127.1:8265/api/jobs/",
                "http://localhost:41234/", "http://[::1]:6379/", "http://[::ffff:127.0.0.1]:8000/",
                "http://2130706433:8000/", "http://10.0.0.5:6379/", "http://0.0.0.0:8000/"):
        expected = Verdict.UNSPECIFIED if "0.0.0.0" in url else Verdict.OWN_LISTENER
        assert await verdict(g, url) is expected, url
    assert await verdict(g, "http://10.0.0.6:6379/") is None  # another host's Redis is the operator's business


async def test_legacy_literals_reaching_the_connect_step_are_still_classified() -> None:
    """httpx refuses octal hosts in a URL; the connect step classifies them anyway (inet_aton semantics)."""
    g = guard(allow="127.0.0.0/8", own=OwnListeners(frozenset({6379})))
    assert literal_address("0177.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("backend.example") is None and literal_address("1.2.3.4.5") is None
    with pytest.raises(EgressDenied) as denied:
        await g.addresses("0177.0.0.1", 6379)
    assert denied.value.verdict is Verdict.OWN_LISTENER
    assert g._resolve.asked == []  # type: ignore[attr-defined]


def test_the_service_lists_its_own_listeners() -> None:
    config = RuntimeConfig(redis_url="redis://:pw@127.0.0.1:41999/0", web_url="http://127.0.0.1:9", data_dir="/x",
                           http_port=41888, egress_allow=("127.0.0.0/8",))
    own = own_listeners(config)
    assert {41888, 41999, 6379, 8265, 10001, 52365} <= own.ports
    assert ipaddress.ip_address("127.0.0.1") in own.hosts  # this host's interfaces
    g = guard_for(config)
    assert g.policy.own == own and [str(n) for n in g.policy.networks] == ["127.0.0.0/8"]
    assert own.covers(ipaddress.ip_address("127.0.0.1"), 41999) and not own.covers(
        ipaddress.ip_address("127.0.0.1"), 41998)


def test_every_node_of_a_redis_cluster_is_one_of_our_own_listeners() -> None:
    config = RuntimeConfig(redis_url="redis+cluster://:pw@127.0.0.1:41997,127.0.0.2:41996/0",
                           web_url="http://127.0.0.1:9", data_dir="/x", http_port=41888,
                           egress_allow=("127.0.0.0/8",))
    own = own_listeners(config)
    for host, port in (("127.0.0.1", 41997), ("127.0.0.2", 41996)):
        assert own.covers(ipaddress.ip_address(host), port), (host, port)
    assert not own.covers(ipaddress.ip_address("127.0.0.1"), 41995)


def test_allow_list_parsing() -> None:
    assert split_allow(" 10.0.0.0/8,backend.internal  192.168.1.7 ") == ("10.0.0.0/8", "backend.internal",
                                                                          "192.168.1.7")
    policy = EgressPolicy.parse(split_allow("10.0.0.0/8,backend.internal,fd00::/8"))
    assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "fd00::/8"] and policy.names == {"backend.internal"}
    for junk in ("http://10.0.0.1/", "10.0.0.0/40", "a b/c", "bad_host!"):
        with pytest.raises(ValueError):
            split_allow(junk)


async def test_no_dns_mode_resolves_no_name() -> None:
    g = EgressGuard(EgressPolicy.parse(("127.0.0.0/8",)), no_dns_resolver)
    assert await verdict(g, "http://backend.example/") is Verdict.UNRESOLVED
    assert await verdict(g, "http://127.0.0.1:9000/") is None


def test_denial_text_is_ours() -> None:
    denied = EgressDenied(Verdict.LOOPBACK)
    assert str(denied) == "destination not allowed: loopback address" and denied.code == "egress_denied"
    assert [status_class(s) for s in (200, 302, 418, 503, 999)] == ["2xx", "3xx", "4xx", "5xx", "invalid"]


# ------------------------------------------------------------------------- real loopback connections
@contextmanager
def loopback_listener(answer: bytes | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on 127.0.0.1 the test owns: records what each connection sent first, then answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    seen.append(conn.recv(65536))
                    if answer is not None:
                        conn.sendall(answer)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(2)
        server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
REDIRECT = b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept() -> None:
    """A made-up name only the injected resolver knows: the request can only arrive by the guard's answer."""
    table = {"hooks.backend.test": ["127.0.0.1"]}
    g = guard(allow="127.0.0.0/8", table=table)
    with loopback_listener(OK) as (port, seen):
        async with GuardedClient(g, timeout=5) as client:
            response = await client.post(f"http://hooks.backend.test:{port}/hook", content=b"{}")
        assert response.status_code == 200
        assert f"host: hooks.backend.test:{port}".encode() in seen[0].lower()
    assert g._resolve.asked == ["hooks.backend.test"]  # type: ignore[attr-defined]  # resolved once


async def test_dns_rebinding_cannot_move_a_checked_name_to_loopback() -> None:
    """The write-time check saw a public address; at send time the name answers loopback: refused before
    any connection (the guard checks the addresses it connects to, not the ones it saw earlier)."""
    answers = [[PUBLIC], ["127.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in answers.pop(0)]

    g = EgressGuard(EgressPolicy(), rebinding)
    with loopback_listener(OK) as (port, seen):
        assert (await g.check(f"http://rebind.test:{port}/hook")).addresses == (ipaddress.ip_address(PUBLIC),)
        async with GuardedClient(g, timeout=5) as client:
            with pytest.raises(EgressDenied) as denied:
                await client.post(f"http://rebind.test:{port}/hook", content=b"{}")
        await asyncio.sleep(0.3)
        assert denied.value.verdict is Verdict.LOOPBACK and seen == []


async def test_a_mixed_answer_connects_nowhere() -> None:
    g = guard(table={"mixed.test": ["127.0.0.1", "169.254.169.254"]}, allow="127.0.0.0/8")
    with loopback_listener(OK) as (port, seen):
        async with GuardedClient(g, timeout=5) as client:
            with pytest.raises(EgressDenied):
                await client.get(f"http://mixed.test:{port}/")
        await asyncio.sleep(0.3)
        assert seen == []


async def test_redirects_are_answers_not_destinations() -> None:
    g = guard(allow="127.0.0.0/8")
    with loopback_listener(REDIRECT) as (port, seen):
        async with GuardedClient(g, timeout=5) as client:
            response = await client.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
            assert response.status_code == 302 and len(seen) == 1
            response = await client.get(f"http://127.0.0.1:{port}/", follow_redirects=True)  # asked: still not
            assert response.status_code == 302 and len(seen) == 2


async def test_https_keeps_the_host_name_for_sni() -> None:
    """The TLS ClientHello to the checked address names the URL's host (and the certificate is checked
    against it: this listener has none, so the request fails, on our side, after the hello)."""
    g = guard(allow="127.0.0.0/8", table={"secure.backend.test": ["127.0.0.1"]})
    with loopback_listener(None) as (port, seen):
        async with GuardedClient(g, timeout=3) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"https://secure.backend.test:{port}/")
        assert b"secure.backend.test" in seen[0]


async def test_url_rules_apply_to_every_request_and_proxies_are_ignored(monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    g = guard(allow="127.0.0.0/8")
    with loopback_listener(OK) as (port, seen):
        async with GuardedClient(g, timeout=5) as client:
            with pytest.raises(EgressDenied) as denied:
                await client.get(f"http://user@127.0.0.1:{port}/")
            assert denied.value.verdict is Verdict.USERINFO
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200  # not via the "proxy"
        assert len(seen) == 1


async def test_denied_loopback_is_refused_by_the_client_too() -> None:
    with loopback_listener(OK) as (port, seen):
        async with GuardedClient(guard(), timeout=5) as client:
            for url in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://127.1:{port}/",
                        f"http://[::ffff:127.0.0.1]:{port}/"):
                with pytest.raises(EgressDenied):
                    await client.get(url)
        await asyncio.sleep(0.3)
        assert seen == []
