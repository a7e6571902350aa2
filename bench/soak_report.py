"""The soak's verdicts, its Markdown and its plot, from the samples alone (no service needed: unit-testable).

Growth of a series (one component's PSS, fds or asyncio tasks; Redis memory or clients) is measured from
the end of the warm-up to the end of the run, robustly: `start` is the median of the first k samples taken
at or after the warm-up's end, `end` the median of the last k, with k = 3 (fewer when the run has fewer than
six such samples, so the two never share a sample). growth = (end - start) / start. A series passes when
growth < the limit (5%); a count (fds, tasks, clients) also passes when it rose by no more than
`count_slack` (2 by default: connections or tasks in flight at the moment of a sample are not a trend;
the toy runs showed the Serve controller's and the dispatcher's tasks move by 2 between samples).
The least-squares slope over every post-warm-up sample (per hour) is reported beside it.

p99 unchanged: the p99 accept->ack of the messages accepted in the last `compare` seconds of the run is at
most the p99 of those accepted in the first `compare` seconds after the warm-up, plus the larger of 20% of
it and 100 ms. A lower p99 at the end passes (it is not a degradation).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wa_ray.bench.output import fmt, table
from wa_ray.bench.report import percentile

GROWTH_LIMIT_PCT = 5.0
COUNT_SLACK = 2.0
P99_REL = 0.20
P99_ABS_MS = 100.0
EDGE_SAMPLES = 3
JUDGED = ("pss_mb", "fds", "tasks")  # per component; rss_mb and uss_mb are reported, not judged
COUNTS = frozenset({"fds", "tasks", "connected_clients", "processes"})


@dataclass(frozen=True)
class Growth:
    component: str
    metric: str
    start: float | None  # median of the first k post-warm-up samples
    end: float | None  # median of the last k
    change: float | None
    pct: float | None
    slope_per_h: float | None
    k: int
    judged: bool
    ok: bool | None  # None: not judged, or no data


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _slope_per_h(points: Sequence[tuple[float, float]]) -> float | None:
    if len(points) < 2:
        return None
    mt = sum(t for t, _ in points) / len(points)
    mv = sum(v for _, v in points) / len(points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return None if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den * 3600


def growth(component: str, metric: str, points: Sequence[tuple[float, float | None]], judged: bool = True,
           limit_pct: float = GROWTH_LIMIT_PCT, count_slack: float = COUNT_SLACK) -> Growth:
    """`points`: (t_s, value) of the post-warm-up samples, in time order; None values are left out."""
    known = [(t, float(v)) for t, v in points if v is not None]
    k = max(1, min(EDGE_SAMPLES, len(known) // 2))
    if len(known) < 2:
        return Growth(component, metric, None, None, None, None, None, k, judged, None)
    start, end = _median([v for _, v in known[:k]]), _median([v for _, v in known[-k:]])
    change = end - start
    pct = change / start * 100 if start else None
    slack = count_slack if metric in COUNTS else 0.0
    ok = (change <= slack or (pct is not None and pct < limit_pct)) if judged else None
    slope = _slope_per_h(known)
    return Growth(component, metric, round(start, 2), round(end, 2), round(change, 2),
                  None if pct is None else round(pct, 2), None if slope is None else round(slope, 2), k, judged, ok)


def _value(sample: dict[str, Any], component: str, metric: str) -> float | None:
    row = sample["components"].get(component)
    if row is None:  # no process of it at that moment: 0, but an unknown task count stays unknown
        return None if metric == "tasks" else 0.0
    return row.get(metric)


def all_growth(samples: list[dict[str, Any]], warmup_s: float, not_service: frozenset[str],
               limit_pct: float = GROWTH_LIMIT_PCT, count_slack: float = COUNT_SLACK) -> list[Growth]:
    """Every service component's PSS, fds and tasks (+ RSS, USS unjudged), Redis memory, clients and keys."""
    post = [s for s in samples if s["t_s"] >= warmup_s - 1e-6]
    names = sorted({c for s in post for c in s["components"]} - not_service)
    out: list[Growth] = []
    for name in names:
        for metric in (*JUDGED, "rss_mb", "uss_mb", "processes"):
            points = [(s["t_s"], _value(s, name, metric)) for s in post]
            if metric == "tasks" and all(v is None for _, v in points):
                continue
            out.append(growth(name, metric, points, judged=metric in JUDGED, limit_pct=limit_pct,
                              count_slack=count_slack))
    for metric, judged in (("used_memory_mb", True), ("connected_clients", True), ("used_memory_rss_mb", False),
                           ("keys", False)):
        out.append(growth("Redis", metric, [(s["t_s"], s["redis"].get(metric)) for s in post], judged=judged,
                          limit_pct=limit_pct, count_slack=count_slack))
    return out


def p99_of(latencies: list[float]) -> float | None:
    return round(percentile(sorted(latencies), 99), 1) if latencies else None


def p99_verdict(accept_ack: Sequence[tuple[float, float | None]], warmup_s: float, duration_s: float,
                compare_s: float, rel: float = P99_REL, abs_ms: float = P99_ABS_MS) -> dict[str, Any]:
    """`accept_ack`: (accept time since the start of the load, accept->ack ms or None)."""
    first = [ms for t, ms in accept_ack if ms is not None and warmup_s <= t < warmup_s + compare_s]
    last = [ms for t, ms in accept_ack if ms is not None and duration_s - compare_s <= t <= duration_s]
    a, b = p99_of(first), p99_of(last)
    allowed = None if a is None else round(a + max(rel * a, abs_ms), 1)
    return {"first_window_s": [round(warmup_s, 1), round(warmup_s + compare_s, 1)],
            "last_window_s": [round(duration_s - compare_s, 1), round(duration_s, 1)],
            "first_p99_ms": a, "last_p99_ms": b, "first_n": len(first), "last_n": len(last),
            "allowed_last_p99_ms": allowed,
            "rule": f"last <= first + max({rel:.0%} of first, {abs_ms:g} ms)",
            "ok": None if a is None or b is None else b <= (allowed or 0)}


def window_stats(samples_t: Sequence[float], events: Sequence[tuple[float, float | None]]) -> list[dict[str, Any]]:
    """Per sample i >= 1, the events whose start fell in (t[i-1], t[i]]: n, done, p50/p99 ms."""
    out: list[dict[str, Any]] = [{}]
    for lo, hi in itertools.pairwise(samples_t):
        xs = [ms for t, ms in events if lo < t <= hi]
        done = sorted(ms for ms in xs if ms is not None)
        out.append({"n": len(xs), "done": len(done), "p50_ms": round(percentile(done, 50), 1) if done else None,
                    "p99_ms": p99_of(done), "max_ms": round(done[-1], 1) if done else None})
    return out


# ------------------------------------------------------------------ Markdown
def _g(row: dict[str, Any]) -> str:
    if row["pct"] is None:
        return "-" if row["change"] is None else f"{row['change']:+g}"
    return f"{row['pct']:+.1f}%"


def body_md(results: dict[str, Any]) -> str:
    p = results["params"]
    o, i = results["outbound"], results["inbound"]
    c = o["counts"]
    lines = [(f"{p['sessions']} sessions, {p['rate_per_min']:g} msg/min out (pacing off) and "
              f"{p['inbound_rate_per_min']:g} msg/min in for {p['duration_s']:g} s; a sample every "
              f"{p['sample_s']:g} s; warm-up {p['warmup_s']:g} s; p99 windows {p['compare_s']:g} s."), "",
             "## Messages", "",
             table(["direction", "sent", "accepted / received", "acked", "webhooked", "lost", "duplicated",
                    "p50 ms", "p99 ms"],
                   [["outbound (accept->ack)", c["posted"], c["accepted"], c["acked"], c["webhooked"], c["lost"],
                     c["duplicated"], o["latency_ms"]["accept_to_ack"]["p50"],
                     o["latency_ms"]["accept_to_ack"]["p99"]],
                    ["inbound (phone send->SSE)", i["sent"], i["received"], "-", i["webhooked"], i["lost"],
                     i["duplicated"], i["latency_ms"]["p50"], i["latency_ms"]["p99"]]]), "",
             (f"Outbound requests rejected {c['rejected']}, without answer {c['http_errors']}; inbound sends "
              f"refused by the phone API {i['send_errors']}; drained {o['drained']} in {o['drain_s']} s."), ""]
    p99 = results["p99"]
    lines += [(f"p99 accept->ack: first window {p99['first_window_s']} s: {p99['first_p99_ms']} ms "
               f"(n {p99['first_n']}); last window {p99['last_window_s']} s: {p99['last_p99_ms']} ms "
               f"(n {p99['last_n']}); rule {p99['rule']} -> {'ok' if p99['ok'] else 'NOT ok'}."), ""]
    judged = [g for g in results["growth"] if g["judged"]]
    lines += ["## Growth after the warm-up", "",
              (f"start = median of the first k samples at or after {p['warmup_s']:g} s, end = median of the last "
               f"k (k in the table); a series passes below {p['limit_pct']:g}% or when a count rose by at most "
               f"{p['count_slack']:g}. Bench processes (load generator + simulator, webhook receiver) are listed "
               "with the samples, not judged."), "",
              table(["component", "metric", "start", "end", "growth", "slope /h", "k", "ok"],
                    [[g["component"], g["metric"], g["start"], g["end"], _g(g), g["slope_per_h"], g["k"], g["ok"]]
                     for g in judged]), ""]
    top = results.get("top_growing_processes") or []
    if top:
        lines += ["Processes whose PSS grew most (same pid, first post-warm-up sample vs the last):", "",
                  table(["pid", "component", "PSS MB start", "PSS MB end", "change MB", "fds start", "fds end"],
                        [[t["pid"], t["component"], t["pss_mb_start"], t["pss_mb_end"], t["pss_mb_change"],
                          t["fds_start"], t["fds_end"]] for t in top]), ""]
    rows = []
    for s in results["samples"]:
        w, iw, tot = s.get("window") or {}, s.get("inbound_window") or {}, s["components"].get("service total", {})
        rows.append([round(s["t_s"] / 60, 1), w.get("n"), w.get("p50_ms"), w.get("p99_ms"), iw.get("p99_ms"),
                     tot.get("pss_mb"), tot.get("fds"), tot.get("tasks"), s["redis"].get("used_memory_mb"),
                     s["redis"].get("connected_clients"), s["redis"].get("keys"), s["cpu"].get("service_cores"),
                     s["took_s"]])
    lines += ["## Samples", "", ("Window columns are the messages accepted (sent by a phone, for inbound) since "
                                 "the previous sample."), "",
              table(["t min", "accepted", "ack p50", "ack p99", "inbound p99", "service PSS MB", "fds", "tasks",
                     "Redis MB", "Redis clients", "Redis keys", "service cores", "sample took s"], rows), ""]
    last = results["samples"][-1] if results["samples"] else None
    if last:
        lines += ["Last sample by component:", "",
                  table(["component", "processes", "PSS MB", "USS MB", "RSS MB", "fds", "tasks"],
                        [[n, r["processes"], r["pss_mb"], r["uss_mb"], r["rss_mb"], r["fds"], r["tasks"]]
                         for n, r in last["components"].items()]), ""]
    for when, keys in (results.get("redis_keys") or {}).items():
        if keys and keys.get("by_pattern"):
            lines += [(f"Redis keys by pattern ({when}, {keys['keys_scanned']} keys, MEMORY USAGE; a key without "
                       "a TTL stays until something deletes it):"), "",
                      table(["pattern", "keys", "MB", "without TTL"],
                            [[k, v["keys"], v["mb"], v.get("without_ttl")] for k, v in keys["by_pattern"].items()]),
                      ""]
    if results.get("sample_errors"):
        lines += ["Sampling errors (first ones): " + "; ".join(results["sample_errors"][:10]), ""]
    return "\n".join(lines)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """The console table: one row per judged series that failed, plus the worst of each metric."""
    judged = [g for g in results["growth"] if g["judged"] and g["ok"] is not None]
    rows: list[list[str]] = []
    for metric in sorted({g["metric"] for g in judged}):
        mine = [g for g in judged if g["metric"] == metric]
        worst = max(mine, key=lambda g: g["pct"] if g["pct"] is not None else -1e9)
        bad = [g for g in mine if not g["ok"]]
        for g in bad or [worst]:
            rows.append([g["component"], metric, fmt(g["start"]), fmt(g["end"]), _g(g), "yes" if g["ok"] else "NO"])
    return rows


# ------------------------------------------------------------------ plot
def plot(results: dict[str, Any], path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = results["samples"]
    if not samples:
        return False
    p = results["params"]
    xs = [s["t_s"] / 60 for s in samples]
    warm = p["warmup_s"] / 60
    comps = sorted({c for s in samples for c in s["components"]})
    service = [c for c in comps if c != "service total" and c not in results["not_service"]]
    biggest = sorted(service, key=lambda c: -max(s["components"].get(c, {}).get("pss_mb", 0) for s in samples))
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    (mem, rel, fds), (tasks, redis, lat) = axes

    def series(c: str, key: str) -> list[float | None]:
        return [s["components"].get(c, {}).get(key) for s in samples]

    for c in biggest[:10]:
        mem.plot(xs, series(c, "pss_mb"), marker=".", label=c)
    mem.plot(xs, series("service total", "pss_mb"), "k-", linewidth=2, label="service total")
    mem.set_yscale("log")
    mem.set_title("PSS MB by component (top 10, log)")
    growth_by = {(g["component"], g["metric"]): g for g in results["growth"]}
    for c in [*biggest[:10], "service total"]:
        start = (growth_by.get((c, "pss_mb")) or {}).get("start")
        if start:
            rel.plot(xs, [None if v is None else (v - start) / start * 100 for v in series(c, "pss_mb")],
                     marker=".", label=c, **({"color": "k", "linewidth": 2} if c == "service total" else {}))
    rel.axhline(p["limit_pct"], color="red", linestyle="--", linewidth=1)
    rel.axhline(-p["limit_pct"], color="red", linestyle="--", linewidth=1)
    rel.set_title(f"PSS change vs post-warm-up start (%), limit {p['limit_pct']:g}%")
    for c in sorted(service, key=lambda c: -max(s["components"].get(c, {}).get("fds", 0) for s in samples))[:10]:
        fds.plot(xs, series(c, "fds"), marker=".", label=c)
    fds.set_yscale("log")
    fds.set_title("open fds by component (top 10, log)")
    for c in service:
        ys = series(c, "tasks")
        if any(y is not None for y in ys):
            tasks.plot(xs, ys, marker=".", label=c)
    ingress = [sum(s["ingress_metrics_tasks"].values()) if s["ingress_metrics_tasks"] else None for s in samples]
    if any(v is not None for v in ingress):
        tasks.plot(xs, ingress, "k--", label="Ingress /metrics (user loop)")
    tasks.set_title("asyncio tasks by process group")
    redis.plot(xs, [s["redis"].get("used_memory_mb") for s in samples], "b.-", label="used_memory MB")
    redis.set_ylabel("MB", color="b")
    clients = redis.twinx()
    clients.plot(xs, [s["redis"].get("connected_clients") for s in samples], "g.-", label="connected clients")
    clients.set_ylabel("clients", color="g")
    clients.set_ylim(0, max([s["redis"].get("connected_clients") or 0 for s in samples] + [1]) * 1.25)
    redis.set_ylim(bottom=0)
    redis.set_title("Redis")
    wx = [x for x, s in zip(xs, samples, strict=True) if (s.get("window") or {}).get("p99_ms") is not None]
    ws = [s["window"] for s in samples if (s.get("window") or {}).get("p99_ms") is not None]
    lat.plot(wx, [w["p50_ms"] for w in ws], "b.-", label="out accept->ack p50")
    lat.plot(wx, [w["p99_ms"] for w in ws], "r.-", label="out accept->ack p99")
    iws = [(x, s["inbound_window"]["p99_ms"]) for x, s in zip(xs, samples, strict=True)
           if (s.get("inbound_window") or {}).get("p99_ms") is not None]
    if iws:
        lat.plot([x for x, _ in iws], [v for _, v in iws], "m.--", label="in phone->SSE p99")
    lat.set_ylim(bottom=0)
    lat.set_title("latency per sample window (ms)")
    for ax in (mem, rel, fds, tasks, redis, lat):
        ax.axvspan(0, warm, color="grey", alpha=0.15, linewidth=0)
        ax.set_xlabel("minutes (grey: warm-up)")
        ax.grid(alpha=0.3)
    for ax in (mem, rel, fds, tasks, lat):
        ax.legend(fontsize=6, loc="best")
    redis.legend(loc="upper left", fontsize=6)
    clients.legend(loc="lower right", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
