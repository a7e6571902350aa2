"""The benches' building blocks that need no service: /proc memory accounting, the result files, crypto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from wa_ray.bench.memory import Mem, descendants, process_table, rollup, to_mb, total
from wa_ray.bench.output import Envelope, median, pct, ratio, table, write


def test_rollup_reads_this_process_and_sums_a_tree() -> None:
    me = rollup(os.getpid())
    assert me is not None and me.processes == 1
    assert 0 < me.uss <= me.pss <= me.rss
    assert me.pss_anon + me.pss_file + me.pss_shmem <= me.pss + 3  # kB rounding per field
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in descendants(os.getpid(), process_table()) and time.monotonic() < deadline:
            time.sleep(0.05)
        both = total([os.getpid(), child.pid])
        assert both.processes == 2 and both.pss > me.pss
    finally:
        child.kill()
        child.wait()
    assert rollup(child.pid) is None, "a reaped process reads as gone, not as zero"
    assert to_mb(1000) == 1.0  # 1000 KiB = 1.024 MB, rounded
    assert (Mem(pss=1, processes=1) + Mem(pss=2, processes=1)).pss == 3


def test_envelope_writes_stamped_and_latest_files(tmp_path: Path) -> None:
    env = Envelope("unit", command="python -m wa_ray.bench unit", machine={"nproc": 2})
    env.goal("g", "<= 1", "0.5", True)
    env.results = {"x": 1}
    env.notes.append("a note")
    paths = write(env, "## Result\n\n" + table(["a", "b"], [[1, 2.345], [None, True]]), tmp_path)
    data = json.loads(paths["latest_json"].read_text())
    assert data["kind"] == "unit" and data["goals"][0]["met"] is True and data["results"] == {"x": 1}
    assert data["load"]["loadavg_1_5_15_at_start"] and data["load"]["loadavg_1_5_15_at_end"]
    md = paths["md"].read_text()
    assert md.startswith("# wa-ray bench: unit") and "| 1 | 2.35 |" in md and "| - | yes |" in md
    assert paths["json"].name.startswith("unit-2") and paths["md_stamped"].exists()
    assert median([3, 1, 2]) == 2 and pct([1, 2, 3, 4, 5], 95) == 4.8 and ratio(3, 0) is None


def test_crypto_bench_small(tmp_path: Path) -> None:
    from wa_ray.bench.crypto import CryptoConfig, run_crypto

    env, paths = run_crypto(CryptoConfig(size_mb=0.5, runs=2, warmup=0, out_dir=tmp_path), Console(quiet=True))
    stats = env.results["stats"]
    assert stats["encrypt_decrypt"]["n"] == 2 and stats["file_store_save_load"]["median_ms"] > 0
    assert env.results["overhead_bytes"] == 4 + 8 + 12 + 16  # magic, key id, nonce, GCM tag
    assert env.goals[0]["met"] is True and paths["md"].exists()


def test_cpu_per_request_sums_only_the_processes_on_the_targets_path() -> None:
    from wa_ray.bench.api import cpu_per_request

    cpu = {"wall_s": 10.0, "by_component_cores": {
        "ray::ProxyActor": 0.1, "ray::ServeReplica(Ingress)": 0.3, "redis-server": 0.05, "haproxy": 0.02,
        "ray::ServeReplica(BenchTrivial)": 0.2, "bare-starlette": 0.4, "chromium": 0.9}}
    wa = cpu_per_request(cpu, 1000, "wa-ray")
    assert wa["serving"] == 4.7 and "chromium" not in wa  # 0.1 + 0.3 + 0.05 + 0.02 cores over 10 s, 1,000 requests
    assert cpu_per_request(cpu, 1000, "serve-trivial")["serving"] == 3.0
    assert cpu_per_request(cpu, 1000, "bare")["serving"] == 4.0
    assert cpu_per_request(cpu, 0, "bare") == {}
