"""Scenarios that need a Ray cluster of their own run in a subprocess (one driver, one cluster)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.own_cluster


def run_scenario(module: str, *args: str, timeout: float = 400) -> dict:
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"{module} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return orjson.loads(lines[-1][len("RESULT "):])


def test_whole_service_restart_reconnects_every_session_without_qr() -> None:
    """The service comes back from `wa-ray backup` taken while it ran, restored into a fresh data dir."""
    result = run_scenario("tests.scenarios.service_restart", "--sessions", "2", "--down-s", "5", "--backup")
    print(result)
    assert result["qr_after_restart"] == 0
    assert result["sessions"] == 2 and result["restart_to_all_connected_s"] > 0
    # the 5 s the service was down are not uptime (without the alive mark they were counted)
    assert result["uptime_min_s"] <= result["uptime_s"] <= result["uptime_max_s"], result
    # the restore runs inside the 5 s downtime; what it takes beyond that, and the backup, is the scenario's extra
    assert result["backup_bytes"] > 0 and result["backup_s"] < 10 and result["restore_s"] < 10, result


def test_two_nodes_spread_limit_and_node_loss() -> None:
    result = run_scenario("tests.scenarios.multinode")
    print(result)
    assert result["nodes_used"] == result["slot_nodes"], "sessions spread over both slot nodes"
    assert result["per_node_after_4"] == [2, 2], "the per-node limit of 2 holds"
    assert result["fifth_status"] == 503, "no node has a free slot: refused, not queued forever"
    assert result["fifth_in_workspace"] == [409, "quota_exceeded"], "per-workspace quota"
    assert result["victims"] and result["victims_now_on_c"], "the lost node's sessions moved to the node with room"
    assert result["qr_after_removal"] == 0, "and reconnected from saved state, without QR"
    assert result["drained"] == 2 and result["after_drain_on_d"] == result["victims"], "drain moves a node's sessions"
    assert result["qr_after_drain"] == 0
