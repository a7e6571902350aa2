"""The soak's parts that need no service: growth and p99 verdicts, windows, the per-component sums, the
asyncio task probe, the Redis key patterns, and the files (JSON, Markdown, PNG) from synthetic samples."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from wa_ray.bench.output import Envelope
from wa_ray.bench.soak import SoakConfig, SoakTimeline, finish
from wa_ray.bench.soak_probe import pending_tasks, pid_and_tasks
from wa_ray.bench.soak_report import all_growth, growth, p99_verdict, window_stats
from wa_ray.bench.soak_sample import NOT_SERVICE, ProcSample, by_component, ingress_tasks, key_pattern, scan_processes


def test_growth_takes_medians_of_the_edges_and_allows_a_count_slack() -> None:
    flat = growth("x", "pss_mb", [(0, 100), (60, 140), (120, 101), (180, 102), (240, 100), (300, 103)])
    assert (flat.start, flat.end, flat.k) == (101, 102, 3) and flat.ok is True  # the spike is not the start
    leak = growth("x", "pss_mb", [(t, 100 + t / 10) for t in range(0, 600, 60)])
    assert leak.ok is False and leak.pct is not None and leak.pct > 5 and leak.slope_per_h == pytest.approx(360)
    assert growth("x", "fds", [(0, 10), (60, 10), (120, 12), (180, 12)]).ok is True  # +2 fds: within the slack
    assert growth("x", "fds", [(0, 10), (60, 10), (120, 13), (180, 13)]).ok is False
    assert growth("x", "fds", [(0, 10), (60, 10), (120, 12), (180, 12)], count_slack=0).ok is False
    assert growth("x", "tasks", [(0, None), (60, 5)]).ok is None  # one known point: no verdict
    assert growth("x", "rss_mb", [(0, 1), (60, 9)], judged=False).ok is None


def test_all_growth_judges_service_components_only_and_absent_is_zero() -> None:
    def sample(t: float, host: float, bench: float, idle: bool) -> dict[str, Any]:
        comps = {"ray::BrowserHost": {"pss_mb": host, "fds": 40, "tasks": 12, "rss_mb": 1, "uss_mb": 1, "processes": 1},
                 "bench (load + simulator)": {"pss_mb": bench, "fds": 9, "tasks": None, "rss_mb": 1, "uss_mb": 1,
                                              "processes": 1}}
        if idle:
            comps["ray::IDLE"] = {"pss_mb": 50, "fds": 5, "tasks": None, "rss_mb": 1, "uss_mb": 1, "processes": 1}
        return {"t_s": t, "components": comps, "redis": {"used_memory_mb": 10, "connected_clients": 8, "keys": 5}}

    samples = [sample(t, 200, 100 + t, idle=t >= 240) for t in range(0, 360, 60)]
    rows = {(g.component, g.metric): g for g in all_growth(samples, 60, NOT_SERVICE)}
    assert not any(c == "bench (load + simulator)" for c, _ in rows)
    assert rows[("ray::BrowserHost", "pss_mb")].ok is True and rows[("ray::BrowserHost", "tasks")].ok is True
    assert rows[("ray::IDLE", "pss_mb")].ok is False  # a process that appeared is growth (start 0)
    assert ("ray::IDLE", "tasks") not in rows  # never known: not a series
    assert rows[("Redis", "used_memory_mb")].ok is True and rows[("Redis", "keys")].judged is False


def test_p99_verdict_and_windows() -> None:
    events = [(t / 10, 100.0) for t in range(1200)] + [(t / 10, 1000.0 if t > 1150 else 100.0)
                                                          for t in range(0, 1200, 50)]
    same = p99_verdict(events, warmup_s=20, duration_s=120, compare_s=30)
    assert same["first_p99_ms"] is not None and same["first_n"] > 0 and same["last_n"] > 0
    worse = p99_verdict([(t / 10, 100.0 if t < 900 else 400.0) for t in range(1200)], 20, 120, 30)
    assert worse["ok"] is False and worse["allowed_last_p99_ms"] == 200.0
    better = p99_verdict([(t / 10, 400.0 if t < 900 else 100.0) for t in range(1200)], 20, 120, 30)
    assert better["ok"] is True
    w = window_stats([0, 10, 20], [(1, 5.0), (9, None), (15, 7.0), (20, 9.0)])
    assert w[0] == {} and (w[1]["n"], w[1]["done"], w[1]["p99_ms"]) == (2, 1, 5.0)
    assert (w[2]["n"], w[2]["p50_ms"]) == (2, 8.0)


def test_sums_by_component_and_the_service_total() -> None:
    rows = by_component([ProcSample(1, "chromium", 1000, 500, 400, 30), ProcSample(2, "chromium", 1000, 500, 400, 20),
                         ProcSample(3, "ray::BrowserHost", 2000, 1000, 900, 50, tasks=7),
                         ProcSample(4, "bench (load + simulator)", 9000, 9000, 9000, 5)])
    assert rows["chromium"]["processes"] == 2 and rows["chromium"]["fds"] == 50 and rows["chromium"]["tasks"] is None
    assert rows["ray::BrowserHost"]["tasks"] == 7
    total = rows["service total"]
    assert total["processes"] == 3 and total["fds"] == 100 and total["tasks"] == 7
    assert total["pss_mb"] == pytest.approx(2000 * 1024 / 1e6, abs=0.1)
    me = scan_processes(os.getpid(), None)
    assert me[0].component == "bench (load + simulator)" and me[0].pss_kb > 0 and (me[0].fds or 0) > 0


def test_the_task_probe_counts_pending_tasks_of_every_loop() -> None:
    async def main() -> tuple[int, int]:
        before = pending_tasks()
        sleepers = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
        await asyncio.sleep(0)
        during = pending_tasks()
        for t in sleepers:
            t.cancel()
        await asyncio.gather(*sleepers, return_exceptions=True)
        return before, during

    before, during = asyncio.run(main())
    assert during - before == 5
    assert pid_and_tasks(object())[0] == os.getpid()


def test_metrics_lines_and_key_patterns() -> None:
    text = '# HELP x\nwa_ingress_asyncio_tasks{replica="4242"} 57.0\nwa_ingress_sse_clients{replica="4242"} 1.0\n'
    assert ingress_tasks(text) == {"4242": 57}
    assert key_pattern("wa:{bench}:msg:msg_5f0c1a2b") == "wa:{bench}:msg:*"
    assert key_pattern("wa:{bench}:q:s00:normal") == "wa:{bench}:q:*:normal"
    assert key_pattern("wa:{bench}:events") == "wa:{bench}:events"


def test_inbound_sse_is_kept_by_body_and_the_rest_goes_to_the_timeline() -> None:
    tl = SoakTimeline()
    tl.on_sse({"id": "1-0", "type": "message.received", "data": {"text": "soak-in t #000001"}}, 10.0)
    tl.on_sse({"id": "2-0", "type": "message.sent", "data": {"message_id": "m1"}}, 11.0)
    assert tl.first_received("soak-in t #000001") == 10.0 and tl.last_sse_id == "2-0"
    assert "m1" in tl.messages and tl.sse_events == 2 and not tl.webhooked("soak-in t #000001")


def _synthetic_results() -> dict[str, Any]:
    samples = []
    for k in range(7):
        t = k * 20.0
        comps = {"chromium": {"processes": 4, "pss_mb": 300 + k, "uss_mb": 250, "rss_mb": 900, "fds": 200, "tasks": None},
                 "ray::BrowserHost": {"processes": 1, "pss_mb": 150, "uss_mb": 120, "rss_mb": 200, "fds": 60,
                                      "tasks": 30},
                 "service total": {"processes": 5, "pss_mb": 450 + k, "uss_mb": 370, "rss_mb": 1100, "fds": 260,
                                   "tasks": 30}}
        samples.append({"t_s": t, "wall": 0.0, "took_s": 0.3, "components": comps,
                        "redis": {"used_memory_mb": 5 + k / 10, "connected_clients": 9, "keys": 100 + k,
                                  "used_memory_rss_mb": 9},
                        "ingress_metrics_tasks": {"1": 20}, "cpu": {"service_cores": 0.4}, "errors": [],
                        "window": {} if k == 0 else {"n": 20, "done": 20, "p50_ms": 80.0, "p99_ms": 150.0 + k},
                        "inbound_window": {} if k == 0 else {"n": 5, "done": 5, "p50_ms": 60.0, "p99_ms": 90.0}})
    counts = {"posted": 120, "accepted": 120, "acked": 120, "webhooked": 120, "lost": 0, "duplicated": 0,
              "rejected": 0, "http_errors": 0}
    return {"params": {"sessions": 2, "rate_per_min": 60, "inbound_rate_per_min": 15, "duration_s": 120,
                       "sample_s": 20, "warmup_s": 40, "compare_s": 40, "limit_pct": 5.0, "count_slack": 1.0},
            "outbound": {"counts": counts, "drained": True, "drain_s": 1.0,
                         "latency_ms": {"accept_to_ack": {"p50": 80.0, "p99": 150.0}}},
            "inbound": {"sent": 30, "received": 30, "webhooked": 30, "lost": 0, "duplicated": 0, "send_errors": 0,
                        "drained": True, "latency_ms": {"p50": 60.0, "p99": 90.0}},
            "p99": p99_verdict([(t, 100.0) for t in range(120)], 40, 120, 40),
            "growth": [g.__dict__ for g in all_growth(samples, 40, NOT_SERVICE)],
            "top_growing_processes": [], "samples": samples, "not_service": sorted(NOT_SERVICE),
            "redis_keys": {"at the end": {"keys_scanned": 7, "by_pattern": {"wa:{bench}:msg:*": {"keys": 5, "mb": 0.1}}}},
            "sample_errors": [], "errors": []}


def test_files_from_synthetic_samples(tmp_path: Path) -> None:
    cfg = SoakConfig(sessions=2, rate_per_min=60, duration_s=120, sample_s=20, warmup_s=40, out_dir=tmp_path)
    _, paths = finish(Envelope("soak", command="python -m wa_ray.bench soak"), cfg, _synthetic_results(),
                      {"nproc": 2}, {"leftovers_killed": []})
    data = json.loads(paths["latest_json"].read_text())
    assert data["kind"] == "soak" and len(data["results"]["samples"]) == 7
    goals = {g["goal"]: g for g in data["goals"]}
    assert goals["lost / duplicated (outbound accepted, inbound sent)"]["met"] is True
    assert goals["memory (PSS) growth, each service component"]["met"] is True  # +1 MB of 300: under 5%
    md = paths["md"].read_text()
    assert md.startswith("# wa-ray bench: soak") and "## Growth after the warm-up" in md and "wa:{bench}:msg:*" in md
    pytest.importorskip("matplotlib")
    assert paths["png"].stat().st_size > 10_000


def test_config_checks() -> None:
    assert SoakConfig(rate_per_min=1000).inbound_rate == 250
    assert SoakConfig(duration_s=120, warmup_s=40, sample_s=20, compare_s=600).compare_window_s == 40
    with pytest.raises(ValueError):
        SoakConfig(duration_s=60, warmup_s=60).check()
