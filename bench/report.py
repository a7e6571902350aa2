"""Statistics, result records, and their JSON / Markdown / PNG forms."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATENCY_PATHS: tuple[tuple[str, str], ...] = (
    ("accept_to_202", "accept -> 202"),
    ("accept_to_sent", "accept -> message.sent (SSE)"),
    ("accept_to_ack", "accept -> message.ack delivered (SSE)"),
    ("accept_to_webhook", "accept -> ack webhook received"),
    ("accept_to_sent_event_ts", "accept -> message.sent (event ts, service clock)"),
    ("accept_to_ack_event_ts", "accept -> message.ack (event ts, service clock)"),
)
HEADLINE_PATHS = ("accept_to_202", "accept_to_sent", "accept_to_ack", "accept_to_webhook")


@dataclass(frozen=True)
class Stats:
    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None

    @staticmethod
    def of(values: Iterable[float]) -> Stats:
        xs = sorted(values)
        if not xs:
            return Stats(0, None, None, None, None, None)
        return Stats(len(xs), _r(percentile(xs, 50)), _r(percentile(xs, 95)), _r(percentile(xs, 99)),
                     _r(xs[-1]), _r(sum(xs) / len(xs)))


def percentile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_xs:
        raise ValueError("no values")
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _r(x: float) -> float:
    return round(x, 2)


@dataclass(frozen=True)
class Counts:
    planned: int
    posted: int
    accepted: int  # 202
    rejected: int  # an HTTP answer other than 202
    http_errors: int  # no answer (timeout, connection error)
    sent: int  # message.sent seen on SSE
    acked: int  # message.ack seen on SSE
    webhooked: int  # the ack's webhook arrived, signature verified
    failed: int  # message.failed seen on SSE
    lost: int  # accepted, but not in the recipient's inbox at the end of the drain
    duplicated: int  # in the recipient's inbox more than once
    unaccepted_delivered: int  # in an inbox although its POST got no 202
    sse_duplicate_sent: int  # message.sent seen more than once for one message
    webhook_deliveries: int
    webhook_repeats: int  # the same X-Event-Id delivered again
    webhook_bad_signatures: int


@dataclass(frozen=True)
class Rates:
    offered_per_min: float
    posted_per_min: float  # as actually issued by the open-loop generator
    accepted_per_min: float
    acked_per_min: float  # acked messages / (last ack - first accept)


@dataclass
class StepResult:
    label: str
    started_at: str
    params: dict[str, Any]
    counts: Counts
    latency_ms: dict[str, Stats]
    rates: Rates
    drain_s: float
    drained: bool  # every accepted message acked and webhooked before the drain timeout
    client: dict[str, Any]  # generator slip, event-loop lag, status codes, sample errors
    cpu: dict[str, Any]
    ok: bool = True  # zero lost, zero duplicated, drained
    messages: list[dict[str, Any]] | None = None  # per-message records (--raw)
    profile: dict[str, Any] | None = None  # py-spy summaries by process (--profile)
    redis: dict[str, Any] | None = None  # Redis commands per accepted message, by command
    media: dict[str, Any] | None = None  # --mix: per-kind figures, media integrity, CPU per MB, the video probe

    def p99_ack_ms(self) -> float | None:
        return self.latency_ms["accept_to_ack"].p99


@dataclass
class ThroughputReport:
    kind: str
    created_at: str
    command: str
    machine: dict[str, Any]
    harness: dict[str, Any]
    steps: list[StepResult]
    peak: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    cleanup: dict[str, Any] | None = None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


# ------------------------------------------------------------------ writing
def write_report(report: ThroughputReport, out_dir: Path, name: str) -> dict[str, Path]:
    """`{name}-{stamp}.json` (everything), `{name}-latest.json` and `{name}-latest.md` (+ a PNG for peaks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = to_jsonable(report)
    paths = {"json": out_dir / f"{name}-{stamp()}.json", "latest_json": out_dir / f"{name}-latest.json",
             "md": out_dir / f"{name}-latest.md"}
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    for step in data["steps"]:
        step.pop("messages", None)  # the per-message records stay in the timestamped file only
    paths["latest_json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["md"].write_text(markdown(report))
    if report.peak is not None:
        png = out_dir / f"{name}-latest.png"
        if plot_peak(report, png):
            paths["png"] = png
    return paths


def _fmt(x: float | None) -> str:
    return "-" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


def markdown(report: ThroughputReport) -> str:
    lines = [f"# wa-ray bench: {report.kind}", "", f"Run {report.created_at}: `{report.command}`", ""]
    if report.peak is not None:
        lines += _peak_md(report)
    for step in report.steps:
        lines += _step_md(step, heading=len(report.steps) > 1)
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report.machine.items()]
    lines += ["", "## Harness", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report.harness.items() if k != "links"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _step_md(step: StepResult, heading: bool) -> list[str]:
    c = step.counts
    out = [f"## {step.label}" if heading else "## Result", ""]
    out += ["| parameter | value |", "| --- | --- |"]
    out += [f"| {k} | {v} |" for k, v in step.params.items()]
    out += ["", "| count | value |", "| --- | --- |"]
    for name in ("planned", "accepted", "rejected", "http_errors", "sent", "acked", "webhooked", "failed",
                 "lost", "duplicated", "unaccepted_delivered", "webhook_repeats", "webhook_bad_signatures"):
        out.append(f"| {name} | {getattr(c, name)} |")
    r = step.rates
    out += [(f"| offered / posted / accepted / acked per min | {r.offered_per_min:.0f} / {r.posted_per_min:.0f} / "
             f"{r.accepted_per_min:.0f} / {r.acked_per_min:.0f} |"),
            f"| drained in | {step.drain_s:.1f} s{'' if step.drained else ' (timed out)'} |", ""]
    out += ["| latency (ms) | n | p50 | p95 | p99 | max |", "| --- | --- | --- | --- | --- | --- |"]
    for key, title in LATENCY_PATHS:
        s = step.latency_ms[key]
        out.append(f"| {title} | {s.n} | {_fmt(s.p50)} | {_fmt(s.p95)} | {_fmt(s.p99)} | {_fmt(s.max)} |")
    cl = step.client
    out += ["", (f"Load generator: schedule slip p99 {_fmt(cl['schedule_slip_ms']['p99'])} ms, "
                 f"event-loop lag p99 {_fmt(cl['loop_lag_ms']['p99'])} ms / max {_fmt(cl['loop_lag_ms']['max'])} ms; "
                 f"status codes {cl['status_codes']}."), ""]
    cpu = step.cpu
    if cpu:
        comp = ", ".join(f"{k} {v:.2f}" for k, v in list(cpu["by_component_cores"].items())[:8])
        out += [(f"CPU (cores busy, averaged over the step): machine {cpu['machine_busy_cores']}, ours "
                 f"{cpu['ours_busy_cores']}, other users {cpu['others_busy_cores']}; by component: {comp}."), ""]
        accepted = step.counts.accepted
        if accepted and cpu.get("wall_s"):
            per_msg = {k: v * cpu["wall_s"] * 1000 / accepted for k, v in cpu["by_component_cores"].items()}
            total = sum(per_msg.values())
            top = ", ".join(f"{k} {v:.1f}" for k, v in list(per_msg.items())[:8])
            out += [(f"CPU per accepted message (ms: the step's CPU / accepted, idle background work included, "
                     f"so only meaningful near saturation): total {total:.1f}; {top}."), ""]
    if step.redis:
        by = ", ".join(f"{k} {v:g}" for k, v in step.redis["by_command_per_message"].items())
        out += [(f"Redis per accepted message (background polling included): "
                 f"{step.redis['commands_per_message']} commands, "
                f"{step.redis['server_usec_per_message']} us of server time; by command: {by}."), ""]
    if step.media:
        out += _media_md(step.media)
    if step.profile:
        out += ["py-spy self time (share of samples) by package, per process:", ""]
        for proc, summary in step.profile.items():
            pk = ", ".join(f"{k} {v:.0%}" for k, v in list(summary["self_by_package"].items())[:8])
            out.append(f"- {proc} ({summary['samples']} samples): {pk}")
        out.append("")
    return out


def _media_md(media: dict[str, Any]) -> list[str]:
    out = [f"Mix: {media['mix']}.", "", "| kind | planned | accepted | acked | delivered | ack p50 ms | ack p99 ms |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind, row in media["by_kind"].items():
        ack = row["accept_to_ack_ms"]
        out.append(f"| {kind} | {row['planned']} | {row['accepted']} | {row['acked']} | {row['delivered']} | "
                   f"{_fmt(ack['p50'])} | {_fmt(ack['p99'])} |")
    per_mb = media["service_cpu_s_per_media_mb"]
    out += ["", (f"Media delivered {media['media_delivered_mb']} MB, corrupted on the phone {media['media_corrupted']}; "
                 f"service CPU {media['service_cpu_s']} s over the step, "
                 f"{'-' if per_mb is None else per_mb} CPU s per MB of media (text messages' CPU included: "
                 "an upper bound)."), ""]
    probe = media.get("video_probe")
    if probe:
        out += [(f"Video probe ({probe['size_bytes']} B, uploaded in {probe.get('upload_ms')} ms, accept -> ack "
                 f"{probe.get('accept_to_ack_ms')} ms, delivered intact: {probe.get('delivered_intact')}): service PSS "
                 f"{probe['baseline_pss_mb']} MB before, peak {probe['peak_pss_mb']} MB (+{probe['peak_over_baseline_mb']}"
                 f" MB; +{probe['peak_while_sending_over_baseline_mb']} MB after the upload, while sending); largest "
                 f"growth by component: {probe['largest_growth_by_component_mb']}."), ""]
    return out


def _peak_md(report: ThroughputReport) -> list[str]:
    peak = report.peak or {}
    out = ["## Peak", "",
           (f"Highest offered rate with p99 accept -> ack under {peak.get('threshold_ms')} ms, nothing lost or "
            f"duplicated, and every message acked within the drain: **{peak.get('peak_rate_per_min')} msg/min**"
            f" ({peak.get('sessions')} sessions)."), "",
           ("| offered msg/min | accepted | acked | lost | dup | acked/min | p50 ack ms | p95 ack ms | p99 ack ms "
            "| p99 202 ms | p99 webhook ms | pass |"),
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in report.steps:
        ack, acc, hook = s.latency_ms["accept_to_ack"], s.latency_ms["accept_to_202"], s.latency_ms["accept_to_webhook"]
        out.append(f"| {s.params['rate_per_min']:.0f} | {s.counts.accepted} | {s.counts.acked} | {s.counts.lost} | "
                   f"{s.counts.duplicated} | {s.rates.acked_per_min:.0f} | {_fmt(ack.p50)} | {_fmt(ack.p95)} | "
                   f"{_fmt(ack.p99)} | {_fmt(acc.p99)} | {_fmt(hook.p99)} | {'yes' if s.ok else 'no'} |")
    return out + [""]


def plot_peak(report: ThroughputReport, path: Path) -> bool:
    """p50/p95/p99 accept->ack and acked rate against offered rate. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = [s for s in report.steps if s.latency_ms["accept_to_ack"].n]
    if not steps:
        return False
    x = [s.params["rate_per_min"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        left.plot(x, [getattr(s.latency_ms["accept_to_ack"], key) for s in steps], style, label=f"{key} accept->ack")
    threshold = (report.peak or {}).get("threshold_ms", 2000)
    left.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"{threshold} ms")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered msg/min")
    left.set_ylabel("ms")
    left.set_title("latency vs offered rate")
    left.legend(fontsize=8)
    right.plot(x, [s.rates.acked_per_min for s in steps], "o-", label="acked/min")
    right.plot(x, x, ":", color="grey", label="offered")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("offered msg/min")
    right.set_ylabel("msg/min")
    right.set_title("throughput")
    right.legend(fontsize=8)
    m = report.machine
    fig.suptitle(f"wa-ray {report.peak.get('sessions') if report.peak else ''} sessions; {m.get('nproc')} cores, "
                 f"{m.get('cpu_model')}; {report.created_at}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
