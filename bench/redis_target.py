"""Which Redis a bench runs against, and what the bench itself reads from it.

By default the service starts its embedded Redis in the run's fresh data dir. `REDIS_URL` (or `WA_REDIS_URL`,
the names the service reads) in the bench's environment names another: one server (`redis://`, `rediss://`)
or a Redis Cluster (`redis+cluster://h1:p1,h2:p2,...`, storage/redis_client.py); `--redis-cluster N` points
it at a cluster the bench starts for the run (bench/redis_cluster.py).

`RedisProbe` is the bench's own connection, opened once per run (a cluster client discovers the topology
once, not before every reading). Counters are per server, so INFO commandstats and DBSIZE are read from every
primary and summed: on a cluster each node holds only its share of the slots, and of the work. The version
is one node's. A URL reaches a report only through `redacted_url`: it carries the password.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import psutil
import redis
from redis.cluster import RedisCluster

from wa_ray.storage.redis_client import connect_sync, is_cluster

URL_ENV = ("REDIS_URL", "WA_REDIS_URL")  # Settings.redis_url's names; the first one set wins, as there
EMBEDDED = "embedded (the service's own redis-server, in the run's fresh data dir)"

# query options of a redis URL that can carry a secret (redis-py passes unknown ones to the connection)
_SECRET_OPTION = re.compile(r"pass|secret|token|cred|key", re.IGNORECASE)


class RedisNotEmpty(RuntimeError):
    """The Redis named for the bench already holds keys."""


def requested_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The Redis the operator named for the bench; None: the service's embedded one."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in URL_ENV if env.get(name)), None)


def redacted_url(url: str) -> str:
    """`url` with its password (and any password-like query option) shown as `***`; user, hosts and db kept."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"  # nothing recognisable to keep
    rest = rest.partition("#")[0]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else f"***@{hosts}"  # no colon: the one part may be a token
    path, question, query = tail.partition("?")
    if question:
        tail = path + "?" + "&".join(_redacted_option(option) for option in query.split("&"))
    return f"{scheme}://{netloc}{tail}"


def _redacted_option(option: str) -> str:
    name, eq, _value = option.partition("=")
    return f"{name}=***" if eq and _SECRET_OPTION.search(name) else option


def describe(url: str | None, primaries: int) -> str:
    """The Redis a run used, for its report: embedded, one server, or a cluster of N primaries (no password)."""
    if url is None:
        return EMBEDDED
    if is_cluster(url):
        return f"Redis Cluster, {primaries} primaries: {redacted_url(url)}"
    return f"one server: {redacted_url(url)}"


def sum_commandstats(infos: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, tuple[int, int]]:
    """`INFO commandstats` of several servers as one: command -> (calls, usec), summed over the servers."""
    total: dict[str, tuple[int, int]] = {}
    for info in infos:
        for key, stat in info.items():
            command = key.removeprefix("cmdstat_")
            calls, usec = total.get(command, (0, 0))
            total[command] = (calls + int(stat["calls"]), usec + int(stat["usec"]))
    return total


class RedisProbe:
    """The bench's own client of the service's Redis, one for the run; per-server readings go to each primary."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = connect_sync(url, max_connections=16)

    def close(self) -> None:
        self._client.close()

    def primaries(self) -> list[tuple[str, redis.Redis]]:
        """(name, client of that server) for each primary: a cluster's masters, or the one server."""
        client = self._client
        if isinstance(client, RedisCluster):
            return [(node.name, client.get_redis_connection(node)) for node in client.get_primaries()]
        kwargs = client.connection_pool.connection_kwargs
        return [(str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"), client)]

    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every server, a cluster's replicas included; [] for a unix socket."""
        client = self._client
        if isinstance(client, RedisCluster):
            return [(node.host, int(node.port)) for node in client.get_nodes()]
        kwargs = client.connection_pool.connection_kwargs
        return [] if kwargs.get("path") else [(str(kwargs.get("host")), int(kwargs.get("port") or 6379))]

    def describe(self) -> str:
        return describe(self.url, len(self.primaries()))

    def version(self) -> str:
        """One server's `redis_version` (a cluster's nodes are taken to run the same)."""
        _name, server = self.primaries()[0]
        return str(server.info("server").get("redis_version", "unknown"))

    def commandstats(self) -> dict[str, tuple[int, int]]:
        """command -> (calls, usec) summed over every primary."""
        return sum_commandstats(server.info("commandstats") for _name, server in self.primaries())

    def key_counts(self) -> dict[str, int]:
        """DBSIZE of each primary."""
        return {name: int(server.dbsize()) for name, server in self.primaries()}

    def require_empty(self) -> None:
        """Refuse a Redis that holds keys: they would count in the bench's readings (keys, memory, scans), and
        a run's service cannot read what another run encrypted under its own key."""
        counts = self.key_counts()
        if any(counts.values()):
            held = ", ".join(f"{name}: {n}" for name, n in counts.items())
            raise RedisNotEmpty(
                f"the bench needs an empty Redis, and {self.describe()} holds {sum(counts.values())} keys "
                f"(DBSIZE per primary: {held}). Empty it (FLUSHALL on every primary), point REDIS_URL at an "
                "empty one, or let the bench start its own cluster with --redis-cluster N (REDIS_URL unset).")


def local_pids(addresses: Iterable[tuple[str, int]]) -> list[int]:
    """Processes of this machine listening on these addresses' ports (a Redis the bench did not start, on
    loopback or on one of this machine's addresses); none for remote servers, nor for processes of other
    users (their sockets are not ours to see)."""
    ports = {port for host, port in addresses if _is_local(host)}
    if not ports:
        return []
    pids: set[int] = set()
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid and conn.laddr and conn.laddr.port in ports:
                pids.add(conn.pid)
    return sorted(pids)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        return False
    own = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    return host in own
