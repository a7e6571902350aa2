"""`bench throughput --mix` end to end, small: 2 sessions, 10 messages of text, images and a document sent
by media_id, then the video probe, on the real stack (its own Ray, in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_throughput_mix_smoke(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "wa_ray.bench", "throughput", "--sessions", "2", "--rate", "60", "--duration", "10",
           "--pacing", "off", "--drain-timeout", "60", "--warmup", "0", "--out", str(tmp_path),
           "--mix", "text:70,image:20,document:10", "--image-bytes", "300000", "--document-bytes", "200000",
           "--video-bytes", "3000000"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=230, check=False)
    assert run.returncode == 0, f"bench failed\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"

    (step,) = json.loads((tmp_path / "throughput-latest.json").read_text())["steps"]
    counts, media = step["counts"], step["media"]
    assert counts["accepted"] == counts["acked"] == counts["webhooked"] == 10
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and step["ok"] is True
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
    assert "Mix: text 70%" in (tmp_path / "throughput-latest.md").read_text()
