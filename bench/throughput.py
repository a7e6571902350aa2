"""Open-loop message throughput: POST /messages at a fixed total rate, follow each message to its webhook.

Per message the bench records the accept time (taken just before the POST),
the 202, the `message.sent` and first `message.ack` on SSE, and the arrival of
the webhook carrying that ack; at the end it reads every recipient's inbox on
the simulated phone and checks each accepted message arrived exactly once.

The generator is open-loop: message k is issued at t0 + k * 60 / rate whatever
happened to earlier ones, so a slow service shows up as latency rather than as
a politely lower offered rate. Messages go round-robin over the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wa_ray.bench.drain import until_arrived
from wa_ray.bench.harness import WORKSPACE, Harness, HarnessOptions, Live, SessionLink
from wa_ray.bench.idle import measure_idle
from wa_ray.bench.machine import CpuAccount
from wa_ray.bench.mix import MixPlan, MixSpec, inbox_entries, inbox_key, media_corrupted, mix_summary, video_probe
from wa_ray.bench.profile import StepProfiler
from wa_ray.bench.report import (
    LATENCY_PATHS,
    Counts,
    Rates,
    Stats,
    StepResult,
    ThroughputReport,
    now_iso,
    to_jsonable,
    write_report,
)

log = logging.getLogger("bench")

DEFAULT_PEAK_RATES: tuple[float, ...] = (100, 500, 1000, 2000, 5000, 10000)
PEAK_THRESHOLD_MS = 2000.0
POST_DEADLINE_S = 30.0


@dataclass(frozen=True)
class StepParams:
    sessions: int
    rate_per_min: float
    duration_s: float
    pacing: bool
    drain_timeout_s: float = 60.0
    priority: str = "normal"
    raw: bool = False
    profile_dir: str | None = None  # py-spy the hot processes during the sending phase
    mix: str | None = None  # --mix: the kinds' shares and media sizes (bench/mix.py); None: text only


@dataclass
class Submission:
    seq: int
    session_id: str
    to: str
    text: str
    scheduled_at: float  # wall clock the open-loop schedule assigned
    accept_at: float = 0.0  # wall clock just before the POST
    response_at: float | None = None
    status_code: int | None = None
    message_id: str | None = None
    error: str | None = None
    kind: str = "text"  # a media kind carries `text` as its caption


@dataclass
class LoopLag:
    """How late the bench's own event loop wakes up: a busy client inflates every latency it measures."""

    samples_ms: list[float] = field(default_factory=list)

    async def run(self, period_s: float = 0.05) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(period_s)
            self.samples_ms.append(max(0.0, (loop.time() - before - period_s) * 1000))


# ------------------------------------------------------------------ one step
async def run_step(live: Live, params: StepParams, label: str, console: Console,
                   plan: MixPlan | None = None) -> StepResult:
    links = live.links[: params.sessions]
    tag = f"{label}-{secrets.token_hex(3)}"
    interval = 60.0 / params.rate_per_min
    planned = max(1, round(params.rate_per_min * params.duration_s / 60.0))
    subs: list[Submission] = []
    tasks: set[asyncio.Task[None]] = set()
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    cpu_before = live.harness.cpu.snapshot()
    redis_before = await asyncio.to_thread(live.harness.redis_commandstats)
    started_at = now_iso()

    profiler = StepProfiler(Path(params.profile_dir), label, params.duration_s) if params.profile_dir else None
    if profiler:
        profiler.start()
    with _progress(console) as progress:
        drive = progress.add_task(f"{label}: sending", total=planned, stats="")
        ticker = asyncio.create_task(_tick(progress, drive, subs, live))
        loop = asyncio.get_running_loop()
        kinds = plan.sequence() if plan else None
        t0_loop, t0_wall = loop.time(), time.time()
        for k in range(planned):
            delay = t0_loop + k * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            link = links[k % len(links)]
            sub = Submission(k, link.session_id, link.recipient, f"bench {tag} #{k:06d}", t0_wall + k * interval,
                             kind=kinds.next() if kinds else "text")
            subs.append(sub)
            task = asyncio.create_task(_post(live, sub, params.priority, tag, plan))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            progress.advance(drive)
        if tasks:
            await asyncio.gather(*list(tasks))
        posted_until = time.time()
        progress.update(drive, description=f"{label}: draining")
        drain_started = time.monotonic()
        drained = await _drain(live, subs, params.drain_timeout_s)
        drain_s = time.monotonic() - drain_started
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        _refresh(progress, drive, subs, live)

    cpu = CpuAccount.diff(cpu_before, live.harness.cpu.snapshot())
    redis_after = await asyncio.to_thread(live.harness.redis_commandstats)
    lag_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag_task
    inbox, entries = await _inbox(live, links, tag)
    result = _result(label, started_at, params, subs, live, inbox, tag, lag, t0_wall, posted_until, drain_s, drained,
                     cpu)
    if plan:
        result.media = _mix_result(plan, subs, live, inbox, entries, tag, cpu)
        result.ok = result.ok and result.media["media_corrupted"] == 0
    result.redis = _redis_per_message(redis_before, redis_after, result.counts.accepted)
    if profiler:
        result.profile = to_jsonable(await asyncio.to_thread(profiler.finish))
    return result


def _redis_per_message(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                       accepted: int) -> dict[str, Any]:
    """Redis commands (and server-side time) per accepted message over the step, by command.

    Includes everything the service did meanwhile (SSE reads, the dispatcher's polling), which is the point:
    it is the Redis cost of a message as deployed.
    """
    if not accepted:
        return {}
    delta = {cmd: (calls - before.get(cmd, (0, 0))[0], usec - before.get(cmd, (0, 0))[1])
             for cmd, (calls, usec) in after.items()}
    delta = {cmd: d for cmd, d in delta.items() if d[0] > 0 and cmd != "info"}
    total_calls = sum(c for c, _ in delta.values())
    total_usec = sum(u for _, u in delta.values())
    top = sorted(delta.items(), key=lambda kv: -kv[1][0])
    return {
        "commands_per_message": round(total_calls / accepted, 1),
        "server_usec_per_message": round(total_usec / accepted, 1),
        "by_command_per_message": {cmd: round(c / accepted, 2) for cmd, (c, _) in top[:15]},
    }


def _mix_result(plan: MixPlan, subs: list[Submission], live: Live, inbox: Counter[str],
                entries: list[dict[str, Any]], tag: str, cpu: dict[str, Any]) -> dict[str, Any]:
    accepted = {s.text: s.accept_at for s in subs if s.message_id}
    acked_at: dict[str, float] = {}
    for s in subs:
        t = live.timeline.messages.get(s.message_id) if s.message_id else None
        if t is not None and t.ack_at is not None:
            acked_at[s.text] = t.ack_at
    expected = {s.text: plan.media[s.kind].sha256 for s in subs if s.kind in plan.media}
    return mix_summary(plan, {s.text: s.kind for s in subs}, accepted, acked_at, inbox,
                       media_corrupted(entries, f"bench {tag} #", expected), cpu)


async def _post(live: Live, sub: Submission, priority: str, tag: str, plan: MixPlan | None = None) -> None:
    if plan:
        body = plan.body(sub.kind, sub.to, sub.session_id, sub.text, priority)
    else:
        body = {"session_id": sub.session_id, "to": sub.to, "text": sub.text, "priority": priority}
    sub.accept_at = time.time()
    try:
        # One deadline for the whole call (pool wait included): httpx's timeouts are per phase.
        resp = await asyncio.wait_for(live.api.post(f"/v1/workspaces/{WORKSPACE}/messages", json=body,
                                                    headers={"Idempotency-Key": f"{tag}-{sub.seq}"}),
                                      POST_DEADLINE_S)
    except (httpx.HTTPError, TimeoutError) as exc:  # a timeout or a refused connection is a result, not a crash
        sub.response_at, sub.error = time.time(), f"{type(exc).__name__}: {exc}"[:300]
        return
    sub.response_at, sub.status_code = time.time(), resp.status_code
    if resp.status_code == 202:
        sub.message_id = resp.json()["message_id"]
    else:
        sub.error = resp.text[:300]


def _settled(live: Live, sub: Submission) -> bool:
    if sub.message_id is None:
        return True
    t = live.timeline.messages.get(sub.message_id)
    if t is None:
        return False
    if t.failed_reason is not None:
        return True
    return t.ack_at is not None and live.timeline.webhook_ack_at(sub.message_id) is not None


async def _drain(live: Live, subs: list[Submission], timeout_s: float) -> bool:
    """True once every accepted message has settled (`_settled`), False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    return await until_arrived([s for s in subs if s.message_id], lambda s: _settled(live, s), deadline)


async def _inbox(live: Live, links: list[SessionLink], tag: str) -> tuple[Counter[str], list[dict[str, Any]]]:
    """This run's messages on the recipients' phones (text by body, media by caption): counts, and the entries."""
    prefix = f"bench {tag} #"
    counts: Counter[str] = Counter()
    ours: list[dict[str, Any]] = []
    for entries in await asyncio.gather(*(inbox_entries(live.phones, link.recipient) for link in links)):
        mine = [e for e in entries if inbox_key(e).startswith(prefix)]
        counts.update(inbox_key(e) for e in mine)
        ours += mine
    return counts, ours


@contextlib.contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, refresh_per_second=4) as progress:
        yield progress


def _refresh(progress: Progress, task_id: Any, subs: list[Submission], live: Live) -> None:
    acc = sent = acked = hooked = 0
    for s in subs:
        if s.message_id is None:
            continue
        acc += 1
        t = live.timeline.messages.get(s.message_id)
        if t is None:
            continue
        sent += t.sent_at is not None
        acked += t.ack_at is not None
        hooked += live.timeline.webhook_ack_at(s.message_id) is not None
    progress.update(task_id, stats=f"202 {acc}  sent {sent}  acked {acked}  webhooked {hooked}")


async def _tick(progress: Progress, task_id: Any, subs: list[Submission], live: Live) -> None:
    while True:
        _refresh(progress, task_id, subs, live)
        await asyncio.sleep(0.5)


def _result(label: str, started_at: str, params: StepParams, subs: list[Submission], live: Live,
            inbox: Counter[str], tag: str, lag: LoopLag, t0: float, posted_until: float, drain_s: float,
            drained: bool, cpu: dict[str, Any]) -> StepResult:
    tl = live.timeline
    lat: dict[str, list[float]] = {key: [] for key, _ in LATENCY_PATHS}
    accepted = [s for s in subs if s.message_id]
    sent = acked = hooked = failed = dup_sent = 0
    ack_times: list[float] = []
    records: list[dict[str, Any]] = []
    for s in accepted:
        assert s.message_id is not None and s.response_at is not None
        lat["accept_to_202"].append((s.response_at - s.accept_at) * 1000)
        t = tl.messages.get(s.message_id)
        hook_at = tl.webhook_ack_at(s.message_id)
        if t is not None:
            if t.sent_at is not None:
                sent += 1
                lat["accept_to_sent"].append((t.sent_at - s.accept_at) * 1000)
                if t.sent_ts is not None:
                    lat["accept_to_sent_event_ts"].append((t.sent_ts - s.accept_at) * 1000)
            if t.ack_at is not None:
                acked += 1
                ack_times.append(t.ack_at)
                lat["accept_to_ack"].append((t.ack_at - s.accept_at) * 1000)
                if t.ack_ts is not None:
                    lat["accept_to_ack_event_ts"].append((t.ack_ts - s.accept_at) * 1000)
            failed += t.failed_reason is not None
            dup_sent += t.sse_sent_events > 1
        if hook_at is not None:
            hooked += 1
            lat["accept_to_webhook"].append((hook_at - s.accept_at) * 1000)
        if params.raw:
            records.append({**to_jsonable(s), **(to_jsonable(t) if t else {}), "webhook_at": hook_at})
    texts_accepted = {s.text for s in accepted}
    lost = sum(1 for s in accepted if inbox.get(s.text, 0) == 0)
    duplicated = sum(1 for s in accepted if inbox.get(s.text, 0) > 1)
    unaccepted = sum(1 for text in inbox if text not in texts_accepted)
    codes = Counter(str(s.status_code) if s.status_code else "no answer" for s in subs)
    errors = [f"#{s.seq}: {s.error}" for s in subs if s.error][:5]
    window = max(posted_until - t0, 1e-9)
    ack_window = (max(ack_times) - min(s.accept_at for s in accepted)) if ack_times else 0.0
    counts = Counts(
        planned=len(subs), posted=len(subs), accepted=len(accepted),
        rejected=sum(1 for s in subs if s.status_code is not None and s.status_code != 202),
        http_errors=sum(1 for s in subs if s.status_code is None), sent=sent, acked=acked, webhooked=hooked,
        failed=failed, lost=lost, duplicated=duplicated, unaccepted_delivered=unaccepted,
        sse_duplicate_sent=dup_sent, webhook_deliveries=tl.webhook_deliveries, webhook_repeats=tl.webhook_repeats,
        webhook_bad_signatures=tl.webhook_bad_signatures,
    )
    last_post = max((s.accept_at for s in subs), default=t0)
    rates = Rates(
        offered_per_min=params.rate_per_min,
        posted_per_min=round(len(subs) / max(last_post - t0, 60.0 / params.rate_per_min) * 60, 1)
        if len(subs) > 1 else params.rate_per_min,
        accepted_per_min=round(len(accepted) / window * 60, 1),
        acked_per_min=round(acked / ack_window * 60, 1) if ack_window > 0 else 0.0,
    )
    client = {
        "schedule_slip_ms": to_jsonable(Stats.of((s.accept_at - s.scheduled_at) * 1000 for s in subs)),
        "loop_lag_ms": to_jsonable(Stats.of(lag.samples_ms)),
        "status_codes": dict(codes),
        "sample_errors": errors,
        "sse_events": tl.sse_events,
        "sse_reconnects": live.sse_reconnects,
        "run_tag": tag,
    }
    ok = drained and lost == 0 and duplicated == 0 and counts.rejected == 0 and counts.http_errors == 0 \
        and counts.webhook_bad_signatures == 0
    return StepResult(
        label=label, started_at=started_at, params=to_jsonable(params), counts=counts,
        latency_ms={key: Stats.of(v) for key, v in lat.items()}, rates=rates, drain_s=round(drain_s, 2),
        drained=drained, client=client, cpu=cpu, ok=ok, messages=records if params.raw else None,
    )


# ------------------------------------------------------------------ entry points
@dataclass(frozen=True)
class BenchConfig:
    sessions: int
    pacing: bool
    out_dir: Path
    link_concurrency: int = 4
    raw: bool = False
    warmup_s: float = 5.0  # unrecorded traffic after linking: first connections, cold code paths
    profile_dir: str | None = None
    page_cost: str = "light"  # the simulator page's cost per message: "light" or "heavy"


WARMUP_RATE_PER_MIN = 300.0


def _command() -> str:
    return "python -m wa_ray.bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


async def _with_live(harness: Harness, cfg: BenchConfig, console: Console, body: Any) -> Any:
    async with Live(harness) as live:
        started = time.monotonic()
        with console.status(f"linking {cfg.sessions} sessions (QR on SSE, scan via the phone API)..."):
            await live.link(cfg.sessions, concurrency=cfg.link_concurrency,
                            on_linked=lambda l: console.print(f"  {l.session_id} linked to {l.phone} in {l.link_s:.1f} s"))
        console.print(f"[green]{cfg.sessions} sessions connected[/] in {time.monotonic() - started:.1f} s")
        if cfg.warmup_s > 0:
            warm = await run_step(live, StepParams(cfg.sessions, WARMUP_RATE_PER_MIN, cfg.warmup_s, cfg.pacing, 60.0),
                                  "warmup", console)
            console.print(f"warm-up: {warm.counts.accepted} messages, lost {warm.counts.lost} (not recorded)")
        return await body(live)


def _harness_info(harness: Harness, live_links: list[SessionLink], cfg: BenchConfig) -> dict[str, Any]:
    link_s = [link.link_s for link in live_links]
    return {
        "workspace": WORKSPACE,
        "sessions": cfg.sessions,
        "session_ids": f"{live_links[0].session_id}..{live_links[-1].session_id}" if live_links else "",
        "link_s_max": max(link_s, default=0.0),
        "link_s_p50": Stats.of(link_s).p50,
        "link_concurrency": cfg.link_concurrency,
        "warmup": f"{cfg.warmup_s:g} s at {WARMUP_RATE_PER_MIN:g} msg/min, not recorded" if cfg.warmup_s else "none",
        "simulator": "simulator.wa_web in the bench process (default phone acks: delivered 50 ms, read 150 ms)",
        "page_cost": cfg.page_cost,
        "webhook_receiver": "child process, signature verified on every delivery",
        **harness.runtime_facts(),
    }


def _notes(harness: Harness, machine: dict[str, Any], cfg: BenchConfig) -> list[str]:
    notes = []
    facts = harness.runtime_facts()
    if "pacing" in facts["settings_not_in_this_build"]:
        notes.append(f"pacing requested {'on' if cfg.pacing else 'off'}, but this build of the service has no pacing "
                     "setting, so the run is unpaced either way.")
    notes.append(f"load average at start {machine['loadavg_1m_at_start']} on {machine['nproc']} cores: other "
                 "work on the machine competes with the service and the bench (see 'other users' in CPU lines).")
    return notes


def run_throughput(cfg: BenchConfig, rate: float, duration_s: float, drain_timeout_s: float,
                   console: Console, mix: MixSpec | None = None) -> tuple[ThroughputReport, dict[str, Path]]:
    harness = Harness(HarnessOptions(sessions=cfg.sessions, pacing=cfg.pacing, page_cost=cfg.page_cost))
    report: ThroughputReport | None = None
    console.print("starting simulator, webhook receiver, Redis, Ray, Serve, Chromium...")
    harness.start()
    try:
        machine = to_jsonable(harness.machine())

        async def body(live: Live) -> ThroughputReport:
            params = StepParams(cfg.sessions, rate, duration_s, cfg.pacing, drain_timeout_s, raw=cfg.raw,
                                profile_dir=cfg.profile_dir, mix=mix.describe() if mix else None)
            plan = None
            if mix:
                with console.status("uploading the mix's media once (POST /media)..."):
                    plan = await MixPlan.prepare(live.api, WORKSPACE, mix)
            step = await run_step(live, params, f"{rate:g}msg-min", console, plan)
            if mix and mix.video_probe_bytes and step.media is not None:
                with console.status(f"video probe: {mix.video_probe_bytes} B video, service memory sampled..."):
                    step.media["video_probe"] = await video_probe(live, WORKSPACE, mix.video_probe_bytes)
                step.ok = step.ok and step.media["video_probe"].get("delivered_intact") is True
            return ThroughputReport("throughput", now_iso(), _command(), machine,
                                    _harness_info(harness, live.links, cfg), [step], notes=_notes(harness, machine, cfg))

        report = asyncio.run(_with_live(harness, cfg, console, body))
    finally:
        cleanup = harness.stop()
    report.cleanup = to_jsonable(cleanup)
    return report, write_report(report, cfg.out_dir, "throughput")


def run_peak(cfg: BenchConfig, rates: list[float], step_s: float, drain_timeout_s: float, threshold_ms: float,
             keep_going: bool, console: Console, idle_s: float = 0.0) -> tuple[ThroughputReport, dict[str, Path]]:
    harness = Harness(HarnessOptions(sessions=cfg.sessions, pacing=cfg.pacing, page_cost=cfg.page_cost))
    report: ThroughputReport | None = None
    console.print("starting simulator, webhook receiver, Redis, Ray, Serve, Chromium...")
    harness.start()
    try:
        machine = to_jsonable(harness.machine())

        async def body(live: Live) -> ThroughputReport:
            steps: list[StepResult] = []
            idle = await measure_idle(harness.cpu, idle_s, cfg.sessions) if idle_s > 0 else None
            if idle is not None:
                console.print(f"idle {idle_s:g} s, {cfg.sessions} linked sessions: service {idle['service_cores']} cores")
            for rate in rates:
                params = StepParams(cfg.sessions, rate, step_s, cfg.pacing, drain_timeout_s, raw=cfg.raw,
                                    profile_dir=cfg.profile_dir)
                step = await run_step(live, params, f"{rate:g}msg-min", console)
                p99 = step.p99_ack_ms()
                step.ok = step.ok and p99 is not None and p99 < threshold_ms
                steps.append(step)
                console.print(_step_line(step))
                if not step.ok and not keep_going:
                    break
            passing = [s.params["rate_per_min"] for s in steps if s.ok]
            peak = {"peak_rate_per_min": max(passing) if passing else None, "threshold_ms": threshold_ms,
                    "criterion": "p99 accept->ack < threshold, lost == 0, duplicated == 0, drained, no HTTP errors",
                    "sessions": cfg.sessions, "step_s": step_s, "rates_tried": [s.params["rate_per_min"] for s in steps]}
            if idle is not None:
                peak["idle_service_cores"] = idle["service_cores"]
                peak["idle_by_component_cores"] = idle["by_component_cores"]
            return ThroughputReport("throughput-peak", now_iso(), _command(), machine,
                                    _harness_info(harness, live.links, cfg), steps, peak=peak,
                                    notes=_notes(harness, machine, cfg))

        report = asyncio.run(_with_live(harness, cfg, console, body))
    finally:
        cleanup = harness.stop()
    report.cleanup = to_jsonable(cleanup)
    return report, write_report(report, cfg.out_dir, "throughput-peak")


def _step_line(step: StepResult) -> str:
    ack = step.latency_ms["accept_to_ack"]
    mark = "[green]pass[/]" if step.ok else "[red]fail[/]"
    return (f"{mark} {step.params['rate_per_min']:g} msg/min: accepted {step.counts.accepted}, acked "
            f"{step.counts.acked}, lost {step.counts.lost}, dup {step.counts.duplicated}; accept->ack p50 "
            f"{ack.p50} p95 {ack.p95} p99 {ack.p99} ms; acked {step.rates.acked_per_min:.0f}/min")


def summary_table(report: ThroughputReport) -> Any:
    """Steps as rows for a peak run; for a single run, its latency paths as rows under a count line."""
    from rich.console import Group
    from rich.table import Table

    if report.peak is not None:
        table = Table(title="wa-ray throughput-peak")
        for col in ("msg/min", "accepted", "acked", "lost", "dup", "acked/min", "ack p50", "ack p95", "ack p99",
                    "pass"):
            table.add_column(col, justify="right")
        for s in report.steps:
            ack = s.latency_ms["accept_to_ack"]
            table.add_row(f"{s.params['rate_per_min']:g}", str(s.counts.accepted), str(s.counts.acked),
                          str(s.counts.lost), str(s.counts.duplicated), f"{s.rates.acked_per_min:.0f}",
                          str(ack.p50), str(ack.p95), str(ack.p99), "yes" if s.ok else "no")
        return table
    parts: list[Any] = []
    for s in report.steps:
        c = s.counts
        table = Table(title=f"wa-ray throughput {s.label}: accepted {c.accepted} sent {c.sent} acked {c.acked} "
                            f"webhooked {c.webhooked} lost {c.lost} duplicated {c.duplicated}")
        for col in ("latency ms", "n", "p50", "p95", "p99", "max"):
            table.add_column(col, justify="right" if col != "latency ms" else "left")
        for key, title in LATENCY_PATHS:
            st = s.latency_ms[key]
            table.add_row(title, str(st.n), str(st.p50), str(st.p95), str(st.p99), str(st.max))
        parts.append(table)
    return Group(*parts)
