"""The throughput bench end to end, small, on the real stack: 2 sessions, 120 msg/min for 5 s, with the
`--mix` of text, images and a document sent by media_id, then the video probe, against the simulator's heavy
page (`--page-cost heavy`: WhatsApp Web's per-message encryption, IndexedDB writes and renders, which our
page bridge must live with as it does on the real site). One run checks both the
report's shape (machine, params, counts, latencies, cleanup) and the media figures: each run starts a Ray
of its own (about 20 s), so the plain and the mixed bench share one.

Runs `python -m wa_ray.bench` in a child process: the bench starts (and stops) its own Ray cluster, which
must not collide with the Ray the rest of the suite holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.own_cluster

REPO = Path(__file__).resolve().parents[2]
LATENCY_KEYS = {"accept_to_202", "accept_to_sent", "accept_to_ack", "accept_to_webhook"}
COUNT_KEYS = {"accepted", "sent", "acked", "webhooked", "lost", "duplicated"}
STAT_KEYS = {"n", "p50", "p95", "p99", "max"}


@pytest.mark.timeout(240)
def test_throughput_bench_smoke(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "wa_ray.bench", "throughput", "--sessions", "2", "--rate", "120", "--duration", "5",
           "--pacing", "off", "--drain-timeout", "60", "--warmup", "0", "--out", str(tmp_path),
           "--mix", "text:70,image:20,document:10", "--image-bytes", "300000", "--document-bytes", "200000",
           "--video-bytes", "3000000", "--page-cost", "heavy"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=230, check=False)
    assert run.returncode == 0, f"bench failed\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
    latest = json.loads((tmp_path / "throughput-latest.json").read_text())
    assert (tmp_path / "throughput-latest.md").read_text().startswith("# wa-ray bench: throughput")
    assert "Mix: text 70%" in (tmp_path / "throughput-latest.md").read_text()
    assert len(list(tmp_path.glob("throughput-2*.json"))) == 1
    assert latest["kind"] == "throughput"
    assert latest["harness"]["page_cost"] == "heavy"
    assert {"nproc", "ram_total_gib", "cpu_model", "ray", "playwright", "chromium"} <= latest["machine"].keys()
    (step,) = latest["steps"]
    assert step["params"]["sessions"] == 2 and step["params"]["rate_per_min"] == 120
    assert step["params"]["duration_s"] == 5

    counts = step["counts"]
    assert COUNT_KEYS <= counts.keys()
    assert counts["planned"] == 10
    assert counts["accepted"] == counts["sent"] == counts["acked"] == counts["webhooked"] == 10
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and step["ok"] is True
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

    media = step["media"]
    by_kind = media["by_kind"]
    assert {k: r["planned"] for k, r in by_kind.items()} == {"text": 7, "image": 2, "document": 1}
    assert all(r["delivered"] == r["accepted"] == r["planned"] for r in by_kind.values()), by_kind
    assert by_kind["image"]["accept_to_ack_ms"]["p99"] > 0
    assert media["media_corrupted"] == 0
    assert media["media_delivered_mb"] == pytest.approx((2 * 300000 + 200000) / 1e6, abs=0.01)
    assert media["service_cpu_s_per_media_mb"] > 0
    assert {u["kind"] for u in media["uploads"].values()} == {"image", "document"}
    probe = media["video_probe"]
    assert probe["accept_status"] == 202 and probe["delivered_intact"] is True and "error" not in probe
    assert probe["peak_pss_mb"] >= probe["baseline_pss_mb"] > 0 and probe["samples"] > 3
