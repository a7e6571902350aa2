"""Shared fixtures: the simulator, the whole service (real Redis, Ray, Serve, Chromium), a signed client."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from wa_ray.storage import keys
from wa_ray.storage.embedded import EmbeddedRedis, free_port
from wa_ray.storage.redis_client import connect, connect_sync
from wa_ray.config import Settings
from wa_ray.entry.service import Service
from wa_ray.signing import HmacAuth

ADMIN_KEY_ID = "test-admin"
# the shared service, once some test has started it: what `_sessions_end_with_their_module` cleans up
LIVE_SERVICE = pytest.StashKey[Service]()
EGRESS_ALLOW = "127.0.0.0/8,::1"
# WA_METRICS_TOKEN of the test service: Prometheus' credential for /metrics and the details of /readyz
METRICS_TOKEN = secrets.token_urlsafe(32)
OPERATOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}
# set by `scripts/test --all`: the run keeps the `own_cluster` tests
ALL_TESTS = "WA_TESTS_ALL"
# set by `scripts/test --all` for its second pass: the shared service runs on a three-master Redis Cluster
REDIS_CLUSTER = "WA_TEST_REDIS_CLUSTER"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The default run leaves out the tests marked `own_cluster`; `scripts/test --all` (what CI runs) keeps
    them, first, in their collected order, the rest after them in theirs.

    Why leave them out: each starts a service with a Ray of its own, a minute or more each, seven minutes
    together, a quarter of the whole run on two cores; the default suite must stay under 20 minutes.
    A run that names its tests (`scripts/test tests/chaos`) runs what it names.
    Why first: once the shared service is up it stays up to the end of the run, and even idle it keeps
    Serve's controller, proxy and replicas, Ray's log monitor and dashboard agent busy, which on two cores
    slowed these tests by a tenth and more. No test depends on another's order."""
    named = config.args_source is not pytest.Config.ArgsSource.TESTPATHS
    if not (named or os.environ.get(ALL_TESTS) == "1"):
        left_out = [item for item in items if item.get_closest_marker("own_cluster") is not None]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item.get_closest_marker("own_cluster") is None]
    items.sort(key=lambda item: item.get_closest_marker("own_cluster") is None)


@pytest.fixture(scope="session")
def web_sim() -> Iterator[object]:
    from wa_ray.simulator.wa_web.testing import running_web_simulator

    with running_web_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def bare_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own (not the service's) for store-level tests."""
    with EmbeddedRedis(tmp_path_factory.mktemp("bare-redis")) as server:
        yield server.url


@pytest.fixture
async def redis(bare_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(bare_redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def shared_redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The one three-master Redis Cluster of the run behind tests/redis_cluster.py's `redis_cluster_url`
    (defined here, not there: see that module's docstring). Each test flushes it before use."""
    from tests.redis_cluster import running_redis_cluster

    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(scope="session")
def admin_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def service_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """None: the service starts its embedded Redis, as `scripts/run` does. With WA_TEST_REDIS_CLUSTER=1, a
    three-master Redis Cluster of Debian's redis-server on loopback ports, for the tests that prove the key
    layout (issue 16): `scripts/test --all` runs them a second time that way."""
    if os.environ.get(REDIS_CLUSTER) != "1":
        yield None
        return
    from tests.redis_cluster import redis_server, running_redis_cluster

    if redis_server() is None:  # the cluster pass must not turn into skips: scripts/bootstrap installs it
        pytest.fail("WA_TEST_REDIS_CLUSTER=1 needs Debian's redis-server (scripts/bootstrap --tests installs it)")
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(scope="session")
def service(web_sim, admin_secret: str, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest, service_redis_url: str | None) -> Iterator[Service]:
    data_dir: Path = tmp_path_factory.mktemp("wa-ray-data")
    settings = Settings(
        data_dir=data_dir, http_port=free_port(), web_url=web_sim.url + "/", redis_url=service_redis_url,
        api_key_id=ADMIN_KEY_ID, api_key_secret=admin_secret, webhook_base_delay_s=0.2,
        metrics_token=METRICS_TOKEN,
        # the ingress's provider snapshot: tests that change a workspace's provider or limits wait it out
        # (tests/flows.py `provider_snapshot_expired`); none tests its length
        provider_cache_ttl_s=0.25,
        # the webhook receivers and the Cloud API simulator are loopback listeners the tests own; the service's
        # own ports stay denied (wa_ray/egress.py), and no tenant-named host is ever looked up in DNS
        egress_allow=EGRESS_ALLOW, egress_dns=False,
    )
    svc = Service(settings).start()
    request.config.stash[LIVE_SERVICE] = svc
    try:
        yield svc
    finally:
        del request.config.stash[LIVE_SERVICE]
        svc.stop()


@pytest.fixture(scope="module", autouse=True)
def _sessions_end_with_their_module(request: pytest.FixtureRequest, admin_secret: str) -> Iterator[None]:
    """Deletes every session of the shared service when a test module ends.

    Why: no module reuses another's sessions, but a linked session that outlives its module keeps a page,
    a sender and its share of the dispatcher busy for the rest of the run; 800 tests in, dozens of idle
    numbers slowed the whole box, and a test that kills the BrowserHost made every one of them restore at
    once. Deleting goes through the public route, as a tenant would."""
    yield
    svc = request.config.stash.get(LIVE_SERVICE, None)
    if svc is None:
        return
    with connect_sync(svc.config.redis_url) as r:
        members = sorted(r.smembers(keys.all_sessions()))
    with httpx.Client(base_url=svc.base_url, auth=HmacAuth(ADMIN_KEY_ID, admin_secret), timeout=60) as client:
        for member in members:
            ws, _, sid = member.partition("/")
            gone = client.delete(f"/v1/workspaces/{ws}/sessions/{sid}")
            assert gone.status_code in (204, 404), (member, gone.status_code, gone.text)


@pytest.fixture
async def api(service: Service, admin_secret: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(ADMIN_KEY_ID, admin_secret),
                                 timeout=30) as client:
        yield client


@pytest.fixture
async def phone_api(web_sim) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web_sim.url, timeout=10) as client:
        yield client
