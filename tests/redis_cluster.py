"""A real Redis Cluster on loopback, for tests: `running_redis_cluster(tmp_path)` yields its `redis+cluster://` URL.

The cluster itself (masters only, each a `redis-server` of ours on free loopback ports, with a password, no
persistence, slots split evenly, formed without `redis-cli`, stopped on the way out) is started by
bench/redis_cluster.py, which the bench's `--redis-cluster N` runs as well; this module adds what pytest
needs: the tests that need a cluster are skipped when there is no redis-server binary
(`$WA_TEST_REDIS_SERVER`, else `redis-server` on the PATH, else /usr/bin/redis-server).

Fixtures: `redis_cluster_url` (one cluster per session) and `cluster_redis` (an asyncio client of it, flushed
before each test); import them into a test module to use them.

One cluster per session, whichever modules import them: a fixture imported into a module is registered as
that module's own, so a session-scoped one defined here would start one cluster per importing module (ten of
them, ~3 s each, all alive to the end of the run). The cluster itself is tests/conftest.py's
`shared_redis_cluster_url`, defined once; the fixtures here only hand it on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wa_ray.bench import redis_cluster as _cluster
from wa_ray.bench.redis_cluster import SERVER_ENV, SLOTS, cluster_url, redis_server, server_major, slot_ranges
from wa_ray.storage.redis_client import RedisClient, connect

__all__ = ["SERVER_ENV", "SLOTS", "cluster_redis", "cluster_url", "redis_cluster_url", "redis_server",
           "running_redis_cluster", "server_major", "slot_ranges"]


@contextlib.contextmanager
def running_redis_cluster(tmp_path: Path, *, masters: int = 3, password: str | None = None) -> Iterator[str]:
    """A cluster of `masters` primaries for the duration of the block; yields its `redis+cluster://` URL (every
    node listed). Skips the calling test when no redis-server is installed."""
    if redis_server() is None:
        pytest.skip(f"no redis-server binary for a Redis Cluster (set {SERVER_ENV})")
    with _cluster.running_redis_cluster(tmp_path, masters=masters, password=password) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url(shared_redis_cluster_url: str) -> str:
    return shared_redis_cluster_url


@pytest.fixture
async def cluster_redis(redis_cluster_url: str) -> AsyncIterator[RedisClient]:
    """A client of the session's cluster, every primary flushed first."""
    client = connect(redis_cluster_url)
    await client.flushall()
    yield client
    await client.aclose()
