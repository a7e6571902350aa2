"""The bench on a Redis the operator names (bench/redis_target.py): URLs shown without their password, INFO
commandstats summed over every primary, an external Redis refused unless empty, its local servers counted in
the CPU accounting as `redis-server`, and `--redis-cluster N` on the commands that run a Harness. The cluster
parts run on a real 3-master Redis Cluster (tests/redis_cluster.py; skipped without a redis-server binary)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from tests.redis_cluster import redis_cluster_url  # noqa: F401  (fixture)
from wa_ray.bench.__main__ import build_parser
from wa_ray.bench.harness import Harness, HarnessOptions
from wa_ray.bench.machine import CpuAccount, component_of
from wa_ray.bench.redis_target import (EMBEDDED, RedisNotEmpty, RedisProbe, describe, local_pids, redacted_url,
                                       requested_url, sum_commandstats)
from wa_ray.storage.redis_client import connect_sync

SECRET = "s3cr3t-Pa55"
HASH_TAGS = ("t2", "ws-a", "acme")  # slots 4748, 7741, 11304: one on each of three masters


@pytest.mark.parametrize("url, shown", [
    (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f"redis://app:{SECRET}@redis.internal:6380", "redis://app:***@redis.internal:6380"),
    (f"rediss://{SECRET}@redis.internal", "rediss://***@redis.internal"),
    (f"redis+cluster://:{SECRET}@h1:7000,h2:7001,h3:7002/0",
     "redis+cluster://:***@h1:7000,h2:7001,h3:7002/0"),
    (f"redis://h:1/0?password={SECRET}&ssl_cert_reqs=none", "redis://h:1/0?password=***&ssl_cert_reqs=none"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    (f"unix:///run/redis.sock?db=0&password={SECRET}", "unix:///run/redis.sock?db=0&password=***"),
    (SECRET, "***"),
])
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
    assert SECRET not in redacted_url(url)


def test_the_report_says_which_redis_without_the_password() -> None:
    assert describe(None, 1) == EMBEDDED
    assert describe(f"redis://:{SECRET}@h:6379/0", 1) == "one server: redis://:***@h:6379/0"
    cluster = describe(f"redis+cluster://:{SECRET}@h1:7000,h2:7001", 3)
    assert cluster == "Redis Cluster, 3 primaries: redis+cluster://:***@h1:7000,h2:7001"


def test_the_environment_names_the_redis_as_the_service_reads_it() -> None:
    assert requested_url({}) is None
    assert requested_url({"REDIS_URL": ""}) is None
    assert requested_url({"WA_REDIS_URL": "redis://b"}) == "redis://b"
    assert requested_url({"REDIS_URL": "redis://a", "WA_REDIS_URL": "redis://b"}) == "redis://a"


def test_commandstats_are_summed_over_the_servers() -> None:
    node = {"cmdstat_set": {"calls": 3, "usec": 30, "usec_per_call": 10.0},
            "cmdstat_evalsha": {"calls": 1, "usec": 7, "usec_per_call": 7.0}}
    other = {"cmdstat_set": {"calls": 5, "usec": 20, "usec_per_call": 4.0},
             "cmdstat_xadd": {"calls": 2, "usec": 4, "usec_per_call": 2.0}}
    assert sum_commandstats([node, other]) == {"set": (8, 50), "evalsha": (1, 7), "xadd": (2, 4)}
    assert sum_commandstats([]) == {}


def test_redis_cluster_is_an_option_of_the_commands_that_run_a_harness() -> None:
    parser = build_parser()
    for command in ("throughput", "throughput-peak", "soak", "api", "smoke", "qr", "density", "accept-batch"):
        assert parser.parse_args([command, "--redis-cluster", "3"]).redis_cluster == 3
        assert parser.parse_args([command]).redis_cluster is None
    assert not hasattr(parser.parse_args(["crypto"]), "redis_cluster")
    with pytest.raises(SystemExit):
        parser.parse_args(["throughput", "--redis-cluster", "0"])


def test_redis_cluster_refuses_a_redis_url_already_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from wa_ray.bench.__main__ import main

    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRET}@127.0.0.1:1/0")
    with pytest.raises(SystemExit, match="unset REDIS_URL"):
        main(["throughput", "--redis-cluster", "3"])


# ------------------------------------------------------------------ on a real cluster
def _empty(url: str) -> None:
    client = connect_sync(url)
    try:
        client.flushall()  # every primary
    finally:
        client.close()


def test_the_probe_sums_every_primary(redis_cluster_url: str) -> None:  # noqa: F811
    probe = RedisProbe(redis_cluster_url)
    writer = connect_sync(redis_cluster_url)
    try:
        assert len(probe.primaries()) == 3
        assert probe.describe().startswith("Redis Cluster, 3 primaries: redis+cluster://:***@127.0.0.1:")
        assert probe.version()[0].isdigit()
        before = probe.commandstats()
        for tag in HASH_TAGS:
            writer.set(f"bench-probe:{{{tag}}}", tag)
        after = probe.commandstats()
        assert after["set"][0] - before.get("set", (0, 0))[0] == 3, "one SET on each master, all counted"
        counts = probe.key_counts()
        assert len(counts) == 3 and all(n >= 1 for n in counts.values()), counts
    finally:
        writer.delete(*[f"bench-probe:{{{tag}}}" for tag in HASH_TAGS])
        writer.close()
        probe.close()


def test_a_redis_with_keys_is_refused_and_an_empty_one_is_not(redis_cluster_url: str) -> None:  # noqa: F811
    _empty(redis_cluster_url)
    probe = RedisProbe(redis_cluster_url)
    writer = connect_sync(redis_cluster_url)
    try:
        probe.require_empty()
        writer.set("bench-leftover:{acme}", "1")
        with pytest.raises(RedisNotEmpty, match="holds 1 keys") as refused:
            probe.require_empty()
        password = redis_cluster_url.split("@")[0].rsplit(":", 1)[1]
        assert password not in str(refused.value)
    finally:
        writer.close()
        probe.close()
        _empty(redis_cluster_url)


def test_the_harness_refuses_a_redis_with_keys_before_starting_anything(redis_cluster_url: str) -> None:  # noqa: F811
    _empty(redis_cluster_url)
    writer = connect_sync(redis_cluster_url)
    try:
        writer.set("bench-leftover:{t2}", "1")
        harness = Harness(HarnessOptions(sessions=1), redis_url=redis_cluster_url)
        with pytest.raises(RedisNotEmpty):
            harness.start()
        assert harness.service is None and harness.data_dir is None
        cleanup = harness.stop()
        assert cleanup.leftovers_killed == []
        assert writer.get("bench-leftover:{t2}") == "1", "the cluster started before the harness is not its to end"
        assert all(writer.get_redis_connection(node).ping() for node in writer.get_primaries())
    finally:
        writer.close()
        _empty(redis_cluster_url)


def test_the_cluster_servers_count_as_redis_in_the_cpu_accounting(redis_cluster_url: str) -> None:  # noqa: F811
    probe = RedisProbe(redis_cluster_url)
    # an account rooted at a process that is not the cluster's parent: only watching brings the servers in
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pids = local_pids(probe.addresses())
        assert len(pids) == 3
        assert {component_of(psutil.Process(pid)) for pid in pids} == {"redis-server"}
        account = CpuAccount(root_pid=sleeper.pid)
        assert not set(pids) & set(account.snapshot().per_pid)
        for pid in pids:
            account.watch(pid)
        labels = {pid: label for pid, (label, _cpu) in account.snapshot().per_pid.items()}
        assert {labels.get(pid) for pid in pids} == {"redis-server"}
    finally:
        sleeper.kill()
        sleeper.wait()
        probe.close()
