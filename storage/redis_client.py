"""One way to open Redis, so every owner uses the same options: a single server or a Redis Cluster.

The URL says which:

* `redis://[user:password@]host:port[/0]` (or `rediss://`, TLS): one server, redis-py's own URL format;
* `redis+cluster://[user:password@]host:port[,host:port...][/0][?option=value...]` (or `rediss+cluster://`):
  a Redis Cluster. The hosts are startup nodes (one is enough, the client discovers the others); the
  credentials and query options apply to every node. A cluster has only database 0.

`RedisClient` is either asynchronous client: the code that must behave differently on a cluster (multi-key
reads, SCAN) asks `is_cluster_client`; everything else is written once against the commands both share.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeGuard

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from wa_ray.storage.cluster_routing import StreamReadKeysParser

RedisClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncRedisClient: TypeAlias = redis.Redis | RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379

# redis-py 8's pool holds at most 100 connections by default and raises MaxConnectionsError for the 101st
# concurrent command (not a wait): the ingress at 200 req/s overloaded had more than that in flight and
# answered those requests 500. The ingress caps its own concurrency (serve_app/admission.py, 512 in flight
# by default, each holding at most one connection at a time), so the pool must sit above that cap. On a
# cluster the bound is per node.
MAX_CONNECTIONS = 1024


def _options(max_connections: int, decode_responses: bool) -> dict[str, Any]:
    # decode_responses keeps stream fields and hashes as str throughout. The read timeout must
    # outlast our longest blocking XREAD (10 s); redis-py's default of 5 s would cut it.
    return {"decode_responses": decode_responses, "health_check_interval": 30, "socket_timeout": 30,
            "socket_connect_timeout": 5, "max_connections": max_connections}


def is_cluster(url: str) -> bool:
    """The URL names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def is_cluster_client(client: RedisClient) -> TypeGuard[AsyncRedisCluster]:
    return isinstance(client, AsyncRedisCluster)


def connect(url: str, *, max_connections: int = MAX_CONNECTIONS) -> RedisClient:
    if not is_cluster(url):
        return aioredis.Redis.from_url(url, **_options(max_connections, True))
    single, nodes = _split(url)
    cluster = AsyncRedisCluster.from_url(single, startup_nodes=[AsyncClusterNode(h, p) for h, p in nodes],
                                         **_options(max_connections, True))
    # XREAD and XREADGROUP routed without a COMMAND GETKEYS round trip each (storage/cluster_routing.py); the
    # parser is replaced before the client's first command, which is when redis-py initializes it
    cluster.commands_parser = StreamReadKeysParser()
    return cluster


def connect_sync(url: str, *, decode_responses: bool = True,
                 max_connections: int = MAX_CONNECTIONS) -> SyncRedisClient:
    """A synchronous client with the same options (tools and tests; `decode_responses=False` for DUMP/RESTORE)."""
    if not is_cluster(url):
        return redis.Redis.from_url(url, **_options(max_connections, decode_responses))
    single, nodes = _split(url)
    return RedisCluster.from_url(single, startup_nodes=[ClusterNode(h, p) for h, p in nodes],
                                 **_options(max_connections, decode_responses))


def addresses(url: str) -> list[tuple[str, int]]:
    """The (host, port) of each server the URL names: the one server, or a cluster's startup nodes (the
    cluster may have more). Empty for a unix socket."""
    if is_cluster(url):
        return _split(url)[1]
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("redis", "rediss"):
        return []
    return [_host_port(_netloc(rest)[1].split(",")[0])]


def _split(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL as the single-server URL of its first node (credentials, path and query kept: redis-py
    reads its options from it) and the list of its nodes."""
    scheme, _, rest = url.partition("://")
    userinfo, hosts, tail = _netloc(rest)
    nodes = [_host_port(h) for h in hosts.split(",") if h]
    if not nodes:
        raise ValueError(f"a {scheme}:// URL names at least one host:port")
    first = hosts.split(",")[0]
    return f"{CLUSTER_SCHEMES[scheme.lower()]}://{userinfo}{first}{tail}", nodes


def _netloc(rest: str) -> tuple[str, str, str]:
    """`user:pass@hosts/path?query` as ("user:pass@", "hosts", "/path?query")."""
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    userinfo, at, hosts = netloc.rpartition("@")
    return userinfo + at, hosts, tail


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, int(port) if port else DEFAULT_PORT
