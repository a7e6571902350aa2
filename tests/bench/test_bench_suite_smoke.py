"""density, qr, recovery, api, crypto and soak end to end at toy size, in one combined run (`python -m wa_ray.bench smoke`).

Each bench alone spends most of its time starting the service, so the smoke
run starts it once and runs every bench on it (see bench/smoke.py); it runs in
a child process because the bench starts (and stops) its own Ray cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KINDS = ("crypto", "density", "qr", "api", "recovery", "soak")


def _load(out: Path, kind: str) -> dict:
    data = json.loads((out / f"{kind}-latest.json").read_text())
    assert data["kind"] == kind
    assert (out / f"{kind}-latest.md").read_text().startswith(f"# wa-ray bench: {kind}")
    assert {"nproc", "ram_total_gib", "cpu_model", "chromium"} <= data["machine"].keys()
    load = data["load"]
    assert len(load["loadavg_1_5_15_at_start"]) == 3 and len(load["loadavg_1_5_15_at_end"]) == 3
    assert data["goals"] and all({"goal", "target", "measured", "met"} <= g.keys() for g in data["goals"])
    return data


def _no_leftovers(cleanup: dict) -> None:
    for part in cleanup.values():
        if isinstance(part, dict):
            assert part.get("leftovers_killed", []) == [], cleanup


@pytest.mark.skipif(os.environ.get("WA_BENCH_SMOKE") != "1",
                    reason="opt-in (WA_BENCH_SMOKE=1): runs every bench at toy size (~3 min of the CI budget)")
@pytest.mark.timeout(600)
def test_every_bench_at_toy_size(tmp_path: Path) -> None:
    baselines = shutil.which("node") is not None
    cmd = [sys.executable, "-m", "bench", "smoke", "--out", str(tmp_path)] + ([] if baselines else ["--no-baselines"])
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=580, check=False)
    assert run.returncode == 0, f"smoke failed\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    data = {kind: _load(tmp_path, kind) for kind in KINDS}

    crypto = data["crypto"]["results"]
    assert crypto["stats"]["encrypt_decrypt"]["n"] == 3 and crypto["stats"]["encrypt_decrypt"]["median_ms"] > 0

    density = data["density"]["results"]["methods"]
    (step,) = density["wa-ray"]["steps"]
    assert step["sessions"] == 1 and step["connected_after_sampling"] == 1 and step["session_actor_processes"] == 1
    assert step["per_session_pss_mb"] > 0 and step["fixed_cost_pss_mb"]["total"] > 0
    assert set(step["breakdown_per_session_pss_mb"]) == {
        "SessionActor process", "Chromium (contexts + shared browser processes)",
        "BrowserHost + Playwright driver, amortised"}
    assert step["chromium_processes"].get("browser") == 1, "one Chromium for the node"
    if baselines:
        for method in ("playwright", "wwebjs"):
            (base,) = density[method]["steps"]
            assert base["sessions"] == 1 and base["per_session_pss_mb"] > 0 and base["browsers"] == 1
        assert data["density"]["results"]["comparison"]["by_size"][0]["wwebjs_over_wa_ray"] is not None
    _no_leftovers(data["density"]["cleanup"])

    qr = data["qr"]["results"]
    assert qr["wa_ray"]["sequential_create_to_qr_ms"]["n"] == 2 and qr["wa_ray"]["concurrent_create_to_qr_ms"]["n"] == 2
    assert not qr["wa_ray"]["errors"]
    # no order between the two: the QR can reach SSE before the create's own 201
    assert qr["wa_ray"]["sequential_create_201_ms"]["p50"] > 0 and qr["wa_ray"]["sequential_create_to_qr_ms"]["p50"] > 0
    assert qr["wa_ray"]["bare_ray_actor_start_ms"]["sequential"]["n"] == 10
    if baselines:
        assert qr["wwebjs"]["sequential_initialize_to_qr_ms"]["n"] == 1

    phases = data["api"]["results"]["phases"]
    assert set(phases) == {"bare", "serve-trivial", "wa-ray", "bare (again, last)"}
    for name, phase in phases.items():
        assert phase["requests"] == 40 and phase["ok"] == 40, (name, phase["status_codes"])
        assert 0 < phase["latency_ms"]["p50"] <= phase["latency_ms"]["p99"]
    assert data["api"]["results"]["ratios"]["wa-ray/bare p50"] > 0

    faults = data["recovery"]["results"]["faults"]
    assert set(faults) == {"actor", "browser", "host", "serve", "redis", "service"}
    actor_hosting = faults["actor"].get("not_applicable") is None
    for name, fault in faults.items():
        if name == "actor" and not actor_hosting:
            continue  # grains have no SessionActor to kill; `host` covers their owner's death
        assert not fault.get("error"), (name, fault)
        assert fault["qr_after"] == 0, (name, fault)
        assert fault["all_connected_s"] is not None and fault["all_connected_s"] >= 0, (name, fault)
    if actor_hosting:
        assert faults["actor"]["resumed_live_page"] == 1
    assert faults["host"]["host_restarted"] is True
    assert faults["redis"]["sessions_stayed_connected"] is True
    assert faults["service"]["messages_after"]["accepted"] == 1
    _no_leftovers(data["recovery"]["cleanup"])

    soak = data["soak"]["results"]
    assert not soak["errors"], soak["errors"]
    out, inbound = soak["outbound"]["counts"], soak["inbound"]
    assert out["accepted"] == out["acked"] == out["webhooked"] == 40 and out["lost"] == out["duplicated"] == 0
    assert inbound["sent"] == inbound["received"] == inbound["webhooked"] == 20
    assert inbound["lost"] == inbound["duplicated"] == 0 and inbound["latency_ms"]["p99"] > 0
    assert [s["t_s"] for s in soak["samples"]] == pytest.approx([0, 10, 20, 30, 40], abs=3)
    last = soak["samples"][-1]
    assert {"chromium", "redis-server", "raylet", "service total"} <= last["components"].keys()
    assert last["components"]["service total"]["pss_mb"] > 0 and last["components"]["service total"]["fds"] > 0
    assert any(r["tasks"] for n, r in last["components"].items() if n.startswith("ray::")), "no actor answered"
    assert last["redis"]["used_memory_mb"] > 0 and last["redis"]["connected_clients"] > 0
    assert soak["p99"]["first_p99_ms"] and soak["p99"]["last_p99_ms"]
    assert {g["metric"] for g in soak["growth"] if g["judged"]} >= {"pss_mb", "fds", "tasks", "used_memory_mb"}
    assert len(data["soak"]["goals"]) == 8
    _no_leftovers(data["soak"]["cleanup"])
