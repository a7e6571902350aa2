"""The throughput bench end to end, small: 2 sessions, 60 msg/min, 10 s, on the real stack.

Runs `python -m wa_ray.bench` in a child process: the bench starts (and stops) its own
Ray cluster, which must not collide with a Ray the rest of the suite may hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LATENCY_KEYS = {"accept_to_202", "accept_to_sent", "accept_to_ack", "accept_to_webhook"}
COUNT_KEYS = {"accepted", "sent", "acked", "webhooked", "lost", "duplicated"}
STAT_KEYS = {"n", "p50", "p95", "p99", "max"}


@pytest.mark.timeout(150)
def test_throughput_bench_smoke(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench", "throughput", "--sessions", "2", "--rate", "60", "--duration", "10",
           "--pacing", "off", "--drain-timeout", "30", "--warmup", "0", "--out", str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=140, check=False)
    assert run.returncode == 0, f"bench failed\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"

    latest = json.loads((tmp_path / "throughput-latest.json").read_text())
    assert (tmp_path / "throughput-latest.md").read_text().startswith("# wa-ray bench: throughput")
    assert len(list(tmp_path.glob("throughput-2*.json"))) == 1

    assert latest["kind"] == "throughput"
    assert {"nproc", "ram_total_gib", "cpu_model", "ray", "playwright", "chromium"} <= latest["machine"].keys()
    (step,) = latest["steps"]
    assert step["params"]["sessions"] == 2 and step["params"]["rate_per_min"] == 60
    assert step["params"]["duration_s"] == 10
    counts = step["counts"]
    assert COUNT_KEYS <= counts.keys()
    assert counts["planned"] == 10
    assert counts["accepted"] == counts["sent"] == counts["acked"] == counts["webhooked"] == 10
    assert counts["lost"] == 0 and counts["duplicated"] == 0
    assert counts["webhook_bad_signatures"] == 0
    assert LATENCY_KEYS <= step["latency_ms"].keys()
    for key in LATENCY_KEYS:
        stats = step["latency_ms"][key]
        assert STAT_KEYS <= stats.keys() and stats["n"] == 10
        assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    ack, hook = step["latency_ms"]["accept_to_ack"], step["latency_ms"]["accept_to_webhook"]
    assert step["latency_ms"]["accept_to_202"]["p50"] <= ack["p50"]
    assert hook["n"] == ack["n"]
    assert latest["cleanup"]["leftovers_killed"] == []
