"""`python -m wa_ray.bench soak`: hours of steady traffic, watching for anything that only grows.

Issue 16: 50 sessions at 1,000 msg/min for 60 minutes (pacing off) with inbound traffic and acks; every
process's memory, Redis memory, open fds and asyncio tasks sampled each minute; after the first 10 minutes
each must grow by less than 5%, nothing may be lost, and p99 accept->ack must be the same in the last 10
minutes as in the first 10 after the warm-up. The verdicts' exact definitions are in bench/soak_report.py.

Traffic, from the first second to `--duration` (the warm-up is the first `--warmup` seconds of it, same
load, judged apart):
* outbound: POST /messages open-loop at `--rate`, round-robin over the sessions, exactly as the throughput
  bench does (its poster, drain and lost / duplicated accounting on the recipients' phones are reused);
* inbound: each session's recipient phone writes to the session's number through the simulator's phone API
  (POST /_phone/{n}/messages) at `--inbound-rate` in all, open-loop too; a message counts as received when
  its `message.received` reaches the SSE stream, and its webhook is matched by event id;
* acks: the simulated phones ack every delivery (delivered, then read) as usual.

Every `--sample` seconds bench/soak_sample.py takes a sample; afterwards each sample also gets the
accept->ack of the messages accepted since the previous one. Results: soak-<stamp>.json/.md,
soak-latest.json/.md/.png in `--out`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from wa_ray.bench.drain import until_arrived
from wa_ray.bench.harness import Harness, HarnessOptions, Live, SessionLink
from wa_ray.bench.machine import CpuAccount
from wa_ray.bench.output import Envelope, progress, write
from wa_ray.bench.report import Stats, now_iso, to_jsonable
from wa_ray.bench.soak_report import all_growth, body_md, p99_verdict, plot, window_stats
from wa_ray.bench.soak_sample import NOT_SERVICE, Sample, Sampler, redis_keys_by_pattern
from wa_ray.bench.throughput import POST_DEADLINE_S, LoopLag, StepParams, Submission, _drain, _inbox, _post, _result
from wa_ray.bench.timeline import SSE_TYPES, Timeline

from wa_ray.events import MESSAGE_RECEIVED

SOAK_SSE_TYPES = (*SSE_TYPES, MESSAGE_RECEIVED)


@dataclass(frozen=True)
class SoakConfig:
    sessions: int = 50
    rate_per_min: float = 1000.0
    inbound_rate_per_min: float | None = None  # None: a quarter of the outbound rate
    duration_s: float = 3600.0  # the warm-up included
    sample_s: float = 60.0
    warmup_s: float = 600.0
    compare_s: float = 600.0  # the p99 windows; at most half of what follows the warm-up
    drain_timeout_s: float = 120.0
    out_dir: Path | None = None
    link_concurrency: int = 4
    limit_pct: float = 5.0
    count_slack: float = 2.0
    page_cost: str = "light"
    raw: bool = False  # per-process rows in every sample of the JSON
    first_session: int = 0  # the smoke links its soak sessions after the ones the other benches use

    @property
    def inbound_rate(self) -> float:
        return self.rate_per_min / 4 if self.inbound_rate_per_min is None else self.inbound_rate_per_min

    @property
    def compare_window_s(self) -> float:
        return max(self.sample_s, min(self.compare_s, (self.duration_s - self.warmup_s) / 2))

    def check(self) -> None:
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError("--warmup must be shorter than --duration")
        if self.sample_s > self.duration_s - self.warmup_s:
            raise ValueError("--sample must fit at least once after the warm-up")


@dataclass
class InboundSend:
    seq: int
    phone: str  # the writing phone: the session's recipient
    to: str  # the session's own number
    body: str
    sent_at: float = 0.0
    ok: bool = False
    error: str | None = None


@dataclass
class SoakTimeline(Timeline):
    """The bench's timeline, plus the inbound messages' `message.received` on SSE, by body."""

    received: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # body -> [(event id, arrival)]

    def on_sse(self, event: dict[str, Any], at: float) -> None:
        if event.get("type") != MESSAGE_RECEIVED:
            super().on_sse(event, at)
            return
        self.sse_events += 1
        self.last_sse_id = event.get("id") or self.last_sse_id
        text = (event.get("data") or {}).get("text")
        if text:
            self.received.setdefault(str(text), []).append((str(event.get("id") or ""), at))

    def first_received(self, body: str) -> float | None:
        got = self.received.get(body)
        return min(at for _, at in got) if got else None

    def webhooked(self, body: str) -> bool:
        return any(eid in self.webhook_first for eid, _ in self.received.get(body, ()))


# ------------------------------------------------------------------ traffic
async def _open_loop(rate_per_min: float, duration_s: float, t0: float, fire: Callable[[int], Awaitable[None]],
                     tasks: set[asyncio.Task[None]]) -> None:
    """Item k starts at t0 + k * 60 / rate, whatever happened to the earlier ones (open loop)."""
    if rate_per_min <= 0:
        return
    loop = asyncio.get_running_loop()
    interval = 60.0 / rate_per_min
    for k in range(max(1, round(rate_per_min * duration_s / 60.0))):
        delay = t0 + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(fire(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _phone_send(live: Live, m: InboundSend) -> None:
    m.sent_at = time.time()
    try:
        reply = await asyncio.wait_for(live.phones.post(f"/_phone/{m.phone}/messages",
                                                        json={"to": m.to, "body": m.body}), POST_DEADLINE_S)
    except (httpx.HTTPError, TimeoutError) as exc:
        m.error = f"{type(exc).__name__}: {exc}"[:200]
        return
    m.ok = reply.status_code == 200
    if not m.ok:
        m.error = f"{reply.status_code} {reply.text[:200]}"


async def _drain_inbound(timeline: SoakTimeline, sent: list[InboundSend], deadline: float) -> bool:
    """True once every phone message sent is received and webhooked, False after `deadline` (monotonic)."""
    def arrived(m: InboundSend) -> bool:
        return timeline.first_received(m.body) is not None and timeline.webhooked(m.body)

    return await until_arrived([m for m in sent if m.ok], arrived, deadline)


def _inbound_result(timeline: SoakTimeline, sent: list[InboundSend], prefix: str, drained: bool) -> dict[str, Any]:
    ok = [m for m in sent if m.ok]
    bodies = {m.body for m in ok}
    lat = [(at - m.sent_at) * 1000 for m in ok if (at := timeline.first_received(m.body)) is not None]
    return {
        "sent": len(sent), "send_errors": len(sent) - len(ok), "sample_send_errors": [m.error for m in sent
                                                                                       if m.error][:5],
        "received": sum(1 for m in ok if m.body in timeline.received),
        "webhooked": sum(1 for m in ok if timeline.webhooked(m.body)),
        "lost": sum(1 for m in ok if m.body not in timeline.received),
        # two distinct events for one phone message (the same event resent on reconnect is one)
        "duplicated": sum(1 for m in ok if len({eid for eid, _ in timeline.received.get(m.body, ())}) > 1),
        "unexpected": sum(1 for b in timeline.received if b.startswith(prefix) and b not in bodies),
        "drained": drained, "latency_ms": to_jsonable(Stats.of(lat)),
    }


# ------------------------------------------------------------------ the run
@dataclass
class _Run:
    cfg: SoakConfig
    live: Live
    links: list[SessionLink]
    tag: str
    subs: list[Submission] = field(default_factory=list)
    inbound: list[InboundSend] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    redis_keys: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    t0_wall: float = 0.0

    @property
    def timeline(self) -> SoakTimeline:
        assert isinstance(self.live.timeline, SoakTimeline)
        return self.live.timeline

    async def post(self, k: int) -> None:
        link = self.links[k % len(self.links)]
        interval = 60.0 / self.cfg.rate_per_min
        sub = Submission(k, link.session_id, link.recipient, f"bench {self.tag} #{k:06d}", self.t0_wall + k * interval)
        self.subs.append(sub)
        await _post(self.live, sub, "normal", self.tag)

    async def receive(self, k: int) -> None:
        link = self.links[k % len(self.links)]
        m = InboundSend(k, link.recipient, link.phone, f"soak-in {self.tag} #{k:06d}")
        self.inbound.append(m)
        await _phone_send(self.live, m)

    async def metrics(self) -> str:
        reply = await self.live.api.get("/metrics")
        reply.raise_for_status()
        return reply.text

    def status(self) -> str:
        acked = sum(1 for s in self.subs if s.message_id and (t := self.timeline.messages.get(s.message_id))
                    and t.ack_at is not None)
        got = sum(1 for m in self.inbound if m.body in self.timeline.received)
        last = self.samples[-1].components.get("service total", {}) if self.samples else {}
        return (f"out {len(self.subs)} acked {acked} | in {len(self.inbound)} received {got} | "
                f"service PSS {last.get('pss_mb', '-')} MB")


def _sample_line(s: Sample) -> str:
    tot = s.components.get("service total", {})
    r = s.redis
    return (f"  t {s.t_s / 60:5.1f} min: service PSS {tot.get('pss_mb')} MB in {tot.get('processes')} processes, "
            f"fds {tot.get('fds')}, tasks {tot.get('tasks')}; Redis {r.get('used_memory_mb')} MB, "
            f"{r.get('connected_clients')} clients, {r.get('keys')} keys; took {s.took_s} s"
            + (f"; errors {s.errors[:2]}" if s.errors else ""))


async def soak_phase(cfg: SoakConfig, harness: Harness, live: Live, console: Console) -> dict[str, Any]:
    """The traffic and the samples on linked sessions (`live.links`), then the drain and the accounting."""
    assert harness.service is not None and harness.service.config is not None
    run = _Run(cfg, live, live.links[-cfg.sessions:], f"soak-{secrets.token_hex(3)}")
    sampler = Sampler(harness.service.config.redis_url, harness.receiver.pid if harness.receiver else None,
                      harness.cpu)
    loop = asyncio.get_running_loop()
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    cpu_before = harness.cpu.snapshot()
    started_at = now_iso()
    times = [k * cfg.sample_s for k in range(int(cfg.duration_s // cfg.sample_s) + 1)]
    if times[-1] < cfg.duration_s - 1e-6:
        times.append(cfg.duration_s)
    t0 = loop.time()
    run.t0_wall = time.time()
    senders = [asyncio.create_task(_open_loop(cfg.rate_per_min, cfg.duration_s, t0, run.post, run.tasks)),
               asyncio.create_task(_open_loop(cfg.inbound_rate, cfg.duration_s, t0, run.receive, run.tasks))]
    key_scan: asyncio.Task[Any] | None = None
    scan_at = max((t for t in times if 0 < t < cfg.warmup_s), default=None)
    with progress(console) as bar:
        job = bar.add_task("soak", total=int(cfg.duration_s), info="")
        try:
            for t in times:
                while (delay := t0 + t - loop.time()) > 0:
                    await asyncio.sleep(min(delay, 5.0))  # status() walks every message: not too often
                    bar.update(job, completed=min(cfg.duration_s, loop.time() - t0), info=run.status())
                sample = await sampler.take(loop.time() - t0, run.metrics)
                run.samples.append(sample)
                console.print(_sample_line(sample))
                if t == scan_at:  # what Redis holds as the judged part starts: scanned in the warm-up's last
                    # interval, not the first judged one (the scan's CPU would inflate the baseline p99)
                    key_scan = asyncio.create_task(asyncio.to_thread(redis_keys_by_pattern, sampler.redis_url))
            await asyncio.gather(*senders)
            posted_until = time.time()
            if run.tasks:
                await asyncio.gather(*list(run.tasks))
        except Exception as exc:  # noqa: BLE001 - what was measured until then is still written
            run.errors.append(f"{type(exc).__name__}: {exc}"[:500])
            posted_until = time.time()
            for task in [*senders, *run.tasks]:
                task.cancel()
        bar.update(job, completed=cfg.duration_s, info="draining")
        drain_started = time.monotonic()
        deadline = drain_started + cfg.drain_timeout_s
        drained_out = await _drain(live, run.subs, cfg.drain_timeout_s)
        drained_in = await _drain_inbound(run.timeline, run.inbound, deadline)
        drain_s = time.monotonic() - drain_started
    cpu = CpuAccount.diff(cpu_before, harness.cpu.snapshot())
    lag_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag_task
    if key_scan is not None:
        with contextlib.suppress(Exception):
            run.redis_keys[f"at {scan_at:g} s, the warm-up's last sample"] = await key_scan
    try:
        run.redis_keys["at the end"] = await asyncio.to_thread(redis_keys_by_pattern, sampler.redis_url)
    except Exception as exc:  # noqa: BLE001
        run.errors.append(f"redis key scan: {type(exc).__name__}: {exc}"[:300])
    inbox, _ = await _inbox(live, run.links, run.tag)
    params = StepParams(cfg.sessions, cfg.rate_per_min, cfg.duration_s, False, cfg.drain_timeout_s)
    step = _result("soak", started_at, params, run.subs, live, inbox, run.tag, lag, run.t0_wall, posted_until, drain_s,
                   drained_out, cpu)
    return _results(cfg, run, step, drained_in)


def _results(cfg: SoakConfig, run: _Run, step: Any, drained_in: bool) -> dict[str, Any]:
    tl = run.timeline
    out_events: list[tuple[float, float | None]] = []
    for s in run.subs:
        if s.message_id is None:
            continue
        t = tl.messages.get(s.message_id)
        ack = (t.ack_at - s.accept_at) * 1000 if t is not None and t.ack_at is not None else None
        out_events.append((s.accept_at - run.t0_wall, ack))
    in_events = [(m.sent_at - run.t0_wall, None if (at := tl.first_received(m.body)) is None
                  else (at - m.sent_at) * 1000) for m in run.inbound if m.ok]
    ts = [s.t_s for s in run.samples]
    for s, w, iw in zip(run.samples, window_stats(ts, out_events), window_stats(ts, in_events), strict=True):
        s.window, s.inbound_window = w, iw
    samples = []
    for s in run.samples:
        row = to_jsonable(s)
        if not cfg.raw:
            row.pop("procs", None)
        samples.append(row)
    outbound = to_jsonable(step)
    outbound.pop("messages", None)
    compare = cfg.compare_window_s
    return {
        "params": {"sessions": cfg.sessions, "rate_per_min": cfg.rate_per_min,
                   "inbound_rate_per_min": cfg.inbound_rate, "duration_s": cfg.duration_s, "sample_s": cfg.sample_s,
                   "warmup_s": cfg.warmup_s, "compare_s": compare, "pacing": "off", "limit_pct": cfg.limit_pct,
                   "count_slack": cfg.count_slack, "drain_timeout_s": cfg.drain_timeout_s, "page_cost": cfg.page_cost,
                   "run_tag": run.tag},
        "outbound": outbound,
        "inbound": _inbound_result(tl, run.inbound, f"soak-in {run.tag} #", drained_in),
        "p99": p99_verdict(out_events, cfg.warmup_s, cfg.duration_s, compare),
        "growth": to_jsonable(all_growth(samples, cfg.warmup_s, NOT_SERVICE, cfg.limit_pct, cfg.count_slack)),
        "top_growing_processes": _top_growing(run.samples, cfg.warmup_s),
        "samples": samples,
        "not_service": sorted(NOT_SERVICE),
        "redis_keys": run.redis_keys,
        "sample_errors": [f"t {s.t_s:g}: {e}" for s in run.samples for e in s.errors][:50],
        "errors": run.errors,
    }


def _top_growing(samples: list[Sample], warmup_s: float, top: int = 10) -> list[dict[str, Any]]:
    post = [s for s in samples if s.t_s >= warmup_s - 1e-6]
    if len(post) < 2:
        return []
    first = {p.pid: p for p in post[0].procs}
    rows = []
    for p in post[-1].procs:
        a = first.get(p.pid)
        if a is None or a.component != p.component or p.component in NOT_SERVICE:
            continue
        rows.append({"pid": p.pid, "component": p.component, "pss_mb_start": round(a.pss_kb * 1024 / 1e6, 1),
                     "pss_mb_end": round(p.pss_kb * 1024 / 1e6, 1),
                     "pss_mb_change": round((p.pss_kb - a.pss_kb) * 1024 / 1e6, 1), "fds_start": a.fds,
                     "fds_end": p.fds})
    return sorted(rows, key=lambda r: -r["pss_mb_change"])[:top]


# ------------------------------------------------------------------ verdicts and files
def _worst(growth: list[dict[str, Any]], metric: str, component: str | None = None) -> tuple[str, bool | None]:
    rows = [g for g in growth if g["metric"] == metric and g["judged"] and g["ok"] is not None
            and (component is None or g["component"] == component)
            and (component is not None or g["component"] != "Redis")]
    if not rows:
        return "no data", None
    worst = max(rows, key=lambda g: g["pct"] if g["pct"] is not None else (g["change"] or 0))
    bad = [g["component"] for g in rows if not g["ok"]]
    pct = f"{worst['pct']:+.1f}%" if worst["pct"] is not None else f"{worst['change']:+g}"
    text = f"worst {worst['component']} {worst['start']} -> {worst['end']} ({pct})"
    return text + (f"; over the limit: {', '.join(bad)}" if bad else ""), not bad


def finish(env: Envelope, cfg: SoakConfig, results: dict[str, Any], machine: dict[str, Any],
           cleanup: Any) -> tuple[Envelope, dict[str, Path]]:
    env.machine, env.results, env.cleanup = machine, results, to_jsonable(cleanup)
    if "params" in results:
        c, i, g = results["outbound"]["counts"], results["inbound"], results["growth"]
        limit = f"< {cfg.limit_pct:g}% after the warm-up (median of first vs last samples)"
        env.goal("lost / duplicated (outbound accepted, inbound sent)", "0 / 0",
                 f"out {c['lost']} / {c['duplicated']}, in {i['lost']} / {i['duplicated']}",
                 c["lost"] == c["duplicated"] == i["lost"] == i["duplicated"] == 0)
        failed = c["rejected"] + c["http_errors"] + i["send_errors"]
        env.goal("requests refused or unanswered; drained", "0; yes",
                 f"{failed}; {results['outbound']['drained'] and i['drained']}",
                 failed == 0 and results["outbound"]["drained"] and i["drained"])
        for metric, what, component in (("pss_mb", "memory (PSS) growth, each service component", None),
                                        ("fds", "open fds growth, each service component", None),
                                        ("tasks", "asyncio tasks growth, each actor / replica group", None),
                                        ("used_memory_mb", "Redis used_memory growth", "Redis"),
                                        ("connected_clients", "Redis connected clients growth", "Redis")):
            measured, met = _worst(g, metric, component)
            env.goal(what, limit + (f" or +{cfg.count_slack:g}" if metric not in ("pss_mb", "used_memory_mb") else ""),
                     measured, met)
        p99 = results["p99"]
        env.goal("p99 accept->ack, last window vs first after the warm-up", p99["rule"],
                 f"{p99['first_p99_ms']} -> {p99['last_p99_ms']} ms", p99["ok"])
        env.notes += [
            ("Processes: the bench process (load generator and the WhatsApp Web simulator, which keeps every "
             "message it carried) and the webhook receiver are sampled but not judged."),
            ("asyncio tasks come from every named Ray actor through __ray_call__ (bench/soak_probe.py); the "
             "Ingress's own /metrics figure (its user-code loop) is in each sample as ingress_metrics_tasks."),
            ("Redis keeps message records for the retention period, so its memory and key count grow with "
             "the number of messages; the key breakdown by pattern shows what grew."),
        ]
        body = body_md(results)
    else:
        body = "The run failed before any sample: " + "; ".join(results.get("errors", []))
    title = (f"soak: {cfg.sessions} sessions, {cfg.rate_per_min:g} out + {cfg.inbound_rate:g} in msg/min, "
             f"{cfg.duration_s:g} s; {machine.get('nproc')} cores; {env.created_at}")
    plot_fn = (lambda path: plot(results, path, title)) if results.get("samples") else None
    return env, write(env, body, cfg.out_dir or Path("bench/results"), plot_fn)


def run_soak(cfg: SoakConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    cfg.check()
    env = Envelope("soak")
    harness = Harness(HarnessOptions(sessions=cfg.first_session + cfg.sessions, pacing=False, page_cost=cfg.page_cost))
    console.print("starting simulator, webhook receiver, Redis, Ray, Serve, Chromium...")
    harness.start()
    results: dict[str, Any] = {"errors": []}
    machine: dict[str, Any] = {}
    try:
        machine = to_jsonable(harness.machine())

        async def body() -> dict[str, Any]:
            async with soak_live(harness) as live:
                await link(cfg, live, console)
                return await soak_phase(cfg, harness, live, console)

        results = asyncio.run(body())
    except Exception as exc:  # noqa: BLE001 - written down, and the exit status says so
        results.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}"[:500])
    finally:
        cleanup = harness.stop()
    return finish(env, cfg, results, machine, cleanup)


def soak_live(harness: Harness) -> Live:
    live = Live(harness, sse_types=SOAK_SSE_TYPES)
    live.timeline = SoakTimeline()
    return live


async def link(cfg: SoakConfig, live: Live, console: Console) -> None:
    started = time.monotonic()
    with console.status(f"linking {cfg.sessions} sessions (QR on SSE, scan via the phone API)..."):
        await live.link(cfg.sessions, concurrency=cfg.link_concurrency, start=cfg.first_session)
    console.print(f"[green]{cfg.sessions} sessions connected[/] in {time.monotonic() - started:.1f} s")


def summary(env: Envelope) -> Any:
    from rich.table import Table
    from wa_ray.bench.soak_report import summary_rows

    res = env.results
    t = Table(title="wa-ray soak: growth after the warm-up (worst per metric, and every failure)")
    for col in ("component", "metric", "start", "end", "growth", "ok"):
        t.add_column(col, justify="left" if col in ("component", "metric") else "right")
    if "growth" in res:
        for row in summary_rows(res):
            t.add_row(*row)
    return t
