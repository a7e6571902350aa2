"""`python -m wa_ray.bench api --rate 200 --duration 30`: latency of POST /messages at a fixed open-loop rate.

Targets, one after the other in the same run, same client, same payload:

* `bare`: a bare Starlette endpoint on uvicorn (bench/bare_server.py, its own
  process, loopback) that parses the JSON and answers 202 - the floor for
  "an HTTP JSON POST in Python on this machine". Run first and again last, so
  drift in the machine's load shows.
* `serve-trivial`: the same trivial handler as a Ray Serve deployment in the
  service's own Serve instance (route `/bench-trivial`, through the same HTTP
  proxy as the API): what Serve's proxy -> replica hop costs.
* `wa-ray`: `POST /v1/workspaces/bench/messages` on the real service: HMAC
  auth, nonce check, rate limit, provider choice, the atomic Redis accept,
  202. One linked session (s00), pacing on (the product default) so the sender
  does not compete: messages are accepted and queued as a backend would see.

The generator (bench/loadgen.py: aiohttp on uvloop, its own process) is
open-loop: request k is issued at t0 + k / rate whatever happened to earlier
ones; latency is taken from the moment the request was issued to its response
(the schedule slip is recorded apart; if it is large, the client, not the
server, was the bottleneck). `--warmup` seconds at the same rate precede each
measured phase and are not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from wa_ray.bench.machine import CpuAccount
from wa_ray.bench.output import Envelope, median, pct, progress, ratio, table, write
from wa_ray.bench.report import to_jsonable

TRIVIAL_APP = "bench-trivial"
TRIVIAL_PREFIX = "/bench-trivial"


@dataclass(frozen=True)
class ApiConfig:
    rate: float = 200.0
    duration_s: float = 30.0
    warmup_s: float = 3.0
    targets: list[str] = field(default_factory=lambda: ["bare", "serve-trivial", "wa-ray"])
    out_dir: Path | None = None
    profile_dir: Path | None = None  # py-spy the proxy, the Ingress replica and the bench during the wa-ray phase


def _trivial_deployment() -> Any:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(name="BenchTrivial", num_replicas=1, ray_actor_options={"num_cpus": 0},
                      max_ongoing_requests=2000, max_queued_requests=4000,
                      logging_config={"enable_access_log": False})  # as the Ingress
    class BenchTrivial:
        def __init__(self) -> None:
            self._n = 0

        async def __call__(self, request: Request) -> JSONResponse:
            body = await request.json()
            self._n += 1
            if not isinstance(body, dict) or "to" not in body:
                return JSONResponse({"error": {"code": "invalid"}}, 422)
            return JSONResponse({"message_id": f"msg_{self._n:012d}", "status": "queued", "provider": "webjs"}, 202)

    return BenchTrivial


@dataclass
class Shot:
    scheduled: float
    sent: float = 0.0
    done: float = 0.0
    status: int | str = ""


async def _phase(harness: Any, url: str, link: Any, cfg: ApiConfig, warmup_s: float, bar: Any, label: str
                 ) -> tuple[list[Shot], list[float], dict[str, list[str]]]:
    """One target through bench/loadgen.py (its own process); returns the shots, its loop lag, sample error bodies."""
    from wa_ray.bench.harness import ADMIN_KEY_ID

    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wa_ray.bench.loadgen", "--url", url, "--rate", str(cfg.rate), "--duration",
        str(cfg.duration_s), "--warmup", str(warmup_s), "--key-id", ADMIN_KEY_ID,
        f"--secret={harness.admin_secret}",  # one token: a secret may start with "-", which argparse takes for a flag
        "--session", link.session_id, "--to", link.recipient, "--tag", f"{label}-{time.time():.0f}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, limit=2**26)
    harness.cpu.name(proc.pid, "bench-loadgen")
    n = max(1, int(cfg.rate * cfg.duration_s))
    task_id = bar.add_task(label, total=n, info="warm-up" if warmup_s else "")
    result: dict[str, Any] | None = None
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg.get("ev") == "progress":
            bar.update(task_id, completed=msg["issued"], info=f"answered {msg['done']}")
        elif msg.get("ev") == "result":
            result = msg
    err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
    await proc.wait()
    if result is None:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err[-1500:]}")
    bar.update(task_id, completed=n, info="done")
    shots = [Shot(scheduled=a, sent=b, done=c, status=d)
             for a, b, c, d in zip(result["sched"], result["sent"], result["done"], result["status"], strict=True)]
    return shots, result["lag_ms"], result.get("error_bodies", {})


def _stats(shots: list[Shot], lag: list[float], rate: float, expect: int) -> dict[str, Any]:
    ok = [s for s in shots if s.status == expect]
    lat = [(s.done - s.sent) * 1000 for s in ok]
    from_sched = [(s.done - s.scheduled) * 1000 for s in ok]
    slip = [(s.sent - s.scheduled) * 1000 for s in shots]
    codes: dict[str, int] = {}
    for s in shots:
        codes[str(s.status)] = codes.get(str(s.status), 0) + 1
    span = (max(s.done for s in shots) - min(s.sent for s in shots)) if shots else 0
    return {
        "requests": len(shots), "ok": len(ok), "status_codes": codes, "offered_rps": rate,
        "completed_rps": round(len(ok) / span, 1) if span else None,
        "latency_ms": {"p50": median(lat), "p90": pct(lat, 90), "p99": pct(lat, 99),
                       "max": round(max(lat), 2) if lat else None, "mean": round(sum(lat) / len(lat), 2) if lat else None},
        "latency_from_schedule_ms": {"p50": median(from_sched), "p99": pct(from_sched, 99)},
        "schedule_slip_ms": {"p50": median(slip), "p99": pct(slip, 99), "max": round(max(slip), 2) if slip else None},
        "client_loop_lag_ms": {"p50": median(lag), "p99": pct(lag, 99), "max": round(max(lag), 2) if lag else None},
    }


# The processes that serve a request; their CPU over a phase divided by the requests it issued
# (warm-up included, as the CPU window includes it) is the CPU a request costs on each.
# Each target's path; the processes of the others are no part of its sum.
PATHS = {"bare": ("bare-starlette",), "serve-trivial": ("ray::ProxyActor", "ray::ServeReplica(BenchTrivial)"),
         "wa-ray": ("ray::ProxyActor", "ray::ServeReplica(Ingress)", "redis-server",
                    "haproxy", "ray::HAProxyManager")}  # the last two: WA_INGRESS=haproxy
SERVING = tuple(dict.fromkeys(process for path in PATHS.values() for process in path))


def cpu_per_request(cpu: dict[str, Any], issued: int, target: str) -> dict[str, float]:
    """ms of CPU per request issued, by serving process, and the sum of the ones this target goes through."""
    if not issued:
        return {}
    wall = float(cpu["wall_s"])
    by = {k: round(v * wall * 1000 / issued, 3) for k, v in cpu["by_component_cores"].items() if k in SERVING and v}
    path = PATHS.get(target, PATHS["wa-ray"])
    return {**by, "serving": round(sum(v for k, v in by.items() if k in path), 3)}


def redis_per_request(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                      issued: int) -> dict[str, Any]:
    """Redis commands (and server-side usec) per request over the phase (commands inside scripts counted one by
    one), everything the service did meanwhile included."""
    if not issued:
        return {}
    delta = {cmd: (calls - before.get(cmd, (0, 0))[0], usec - before.get(cmd, (0, 0))[1])
             for cmd, (calls, usec) in after.items()}
    delta = {cmd: d for cmd, d in delta.items() if d[0] > 0 and cmd != "info"}
    top = sorted(delta.items(), key=lambda kv: -kv[1][0])
    return {"commands": round(sum(c for c, _ in delta.values()) / issued, 2),
            "server_usec": round(sum(u for _, u in delta.values()) / issued, 1),
            "by_command": {cmd: round(c / issued, 2) for cmd, (c, _) in top[:12]}}


def _start_bare(port: int) -> subprocess.Popen[bytes]:
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "wa_ray.bench.bare_server", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("bare Starlette server did not start")


def start_targets(cfg: ApiConfig, harness: Any) -> tuple[subprocess.Popen[bytes] | None, int]:
    """Deploy the trivial Serve route and start the bare server (as cfg.targets asks); returns (bare, its port)."""
    from ray import serve

    from wa_ray.storage.embedded import free_port

    if "serve-trivial" in cfg.targets:
        serve.run(_trivial_deployment().bind(), name=TRIVIAL_APP, route_prefix=TRIVIAL_PREFIX, blocking=False)
        deadline = time.monotonic() + 60  # serve.run returns before the proxy routes to it
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(harness.base_url + TRIVIAL_PREFIX, json={"to": "1"}, timeout=2).status_code == 202:
                    break
            time.sleep(0.2)
    port = free_port()
    bare = None
    if "bare" in cfg.targets:
        bare = _start_bare(port)
        harness.cpu.name(bare.pid, "bare-starlette")
    return bare, port


def stop_bare(bare: subprocess.Popen[bytes] | None) -> None:
    if bare is not None:
        bare.terminate()
        try:
            bare.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bare.kill()
            bare.wait()


async def api_phases(cfg: ApiConfig, harness: Any, live: Any, console: Console, bare_port: int) -> dict[str, Any]:
    from wa_ray.bench.harness import WORKSPACE

    phases: dict[str, Any] = {}
    if not live.links:
        with console.status("linking session s00..."):
            await live.link(1)
    link = live.links[0]

    plan = [t for t in ("bare", "serve-trivial", "wa-ray") if t in cfg.targets]
    if "bare" in cfg.targets and len(plan) > 1:
        plan.append("bare (again, last)")
    with progress(console) as bar:
        for target in plan:
            kind = target.split(" ")[0]
            base = f"http://127.0.0.1:{bare_port}" if kind == "bare" else harness.base_url
            path = TRIVIAL_PREFIX if kind == "serve-trivial" else f"/v1/workspaces/{WORKSPACE}/messages"
            load = os.getloadavg()[0]
            profiler = None
            if cfg.profile_dir and kind == "wa-ray":
                from wa_ray.bench.profile import StepProfiler

                profiler = StepProfiler(cfg.profile_dir, "api-wa-ray", cfg.duration_s + cfg.warmup_s)
                profiler.start()
            cpu0 = harness.cpu.snapshot()
            redis0 = await asyncio.to_thread(harness.redis_commandstats)
            shots, lag, error_bodies = await _phase(harness, base + path, link, cfg, cfg.warmup_s, bar,
                                            f"{target}: {cfg.rate:g} req/s")
            cpu = CpuAccount.diff(cpu0, harness.cpu.snapshot())
            redis1 = await asyncio.to_thread(harness.redis_commandstats)
            issued = int(cfg.rate * cfg.warmup_s) + len(shots) if cfg.warmup_s else len(shots)
            ok = sum(1 for s in shots if s.status == 202)
            accepted = round(ok * issued / len(shots)) if shots else 0  # warm-up's 202s taken at the measured share
            phases[target] = {**_stats(shots, lag, cfg.rate, 202), "loadavg_1m_at_start": round(load, 2),
                              "cpu": cpu, "url": base + path,
                              "cpu_note": "over warm-up + measured phase (the load generator's own CPU not included)",
                              "cpu_ms_per_request": cpu_per_request(cpu, issued, kind),
                              "redis_per_202": redis_per_request(redis0, redis1, accepted),
                              "error_bodies": error_bodies}
            if profiler is not None:
                phases[target]["profile"] = to_jsonable(await asyncio.to_thread(profiler.finish))
            p = phases[target]
            console.print(f"{target}: p50 {p['latency_ms']['p50']} ms, p99 {p['latency_ms']['p99']} ms, "
                          f"ok {p['ok']}/{p['requests']}, slip p99 {p['schedule_slip_ms']['p99']} ms")
    return phases


def run_api(cfg: ApiConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.bench.harness import Harness, HarnessOptions, Live

    env = Envelope("api")
    harness = Harness(HarnessOptions(sessions=1, pacing=True))
    console.print("starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    bare: subprocess.Popen[bytes] | None = None
    phases: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    try:
        machine = to_jsonable(harness.machine())
        bare, port = start_targets(cfg, harness)

        async def body() -> dict[str, Any]:
            async with Live(harness, webhook=False) as live:
                return await api_phases(cfg, harness, live, console, port)

        phases = asyncio.run(body())
    finally:
        stop_bare(bare)
        cleanup = to_jsonable(harness.stop())
    return finish(env, cfg, phases, machine, cleanup)


def finish(env: Envelope, cfg: ApiConfig, phases: dict[str, Any], machine: dict[str, Any],
           cleanup: dict[str, Any]) -> tuple[Envelope, dict[str, Path]]:
    env.machine = machine
    env.results = {"rate_rps": cfg.rate, "duration_s": cfg.duration_s, "warmup_s": cfg.warmup_s, "phases": phases,
                   "ratios": _ratios(phases)}
    bad = [f"{k}: {v['requests'] - v['ok']} of {v['requests']} not 202 ({v['status_codes']})"
           for k, v in phases.items() if v["ok"] < v["requests"]]
    if bad:
        env.results["errors"] = bad
    r = env.results["ratios"]
    wa = phases.get("wa-ray")
    if wa:
        env.goal(f"POST /messages at {cfg.rate:g} req/s open loop: every request 202", f"{wa['requests']} x 202",
                 f"{wa['ok']} x 202", wa["ok"] == wa["requests"])
        bad5xx = {c: n for c, n in wa["status_codes"].items() if c.isdigit() and int(c) >= 500 and c != "503"}
        env.goal("POST /messages: overload sheds (503/429), never another 5xx", "0", str(sum(bad5xx.values())),
                 not bad5xx)
        env.goal("POST /messages p50 / p99 vs bare Starlette (ratio, reported)", "-",
                 f"{wa['latency_ms']['p50']} / {wa['latency_ms']['p99']} ms; x{r.get('wa-ray/bare p50')} / "
                 f"x{r.get('wa-ray/bare p99')}", None)
    env.notes += [
        "Latency = request issued -> response, from bench/loadgen.py (aiohttp + uvloop in its own process, keep-alive, "
        "up to 512 connections, 30 s timeout), HMAC-signed for every target so the client's cost is the same.",
        "The whole service (Ray, Serve, Redis, Chromium with one linked session) is up during every phase, "
        "including the bare one: the background is the same for all.",
        "CPU per phase (cores busy by component, and what other users of the machine burnt) is in the JSON.",
        "On this shared 2-core machine the load average was high and moving; the bare phase is run first and last "
        "to show the drift.",
        "Past its capacity the ingress sheds with 503 overloaded (Retry-After: 1) rather than queueing without "
        "bound; a 503 counts as not-202 in the first goal and as correct behaviour in the second. Latency "
        "percentiles are of the 202s only. A client TimeoutError (30 s) is a request still queued upstream of "
        "the application (the Serve proxy or the replica's Serve layer), which the app cannot see or shed.",
        "CPU per request = a process's CPU over the phase (warm-up included) / requests issued in it; the "
        "serve-trivial row is what Serve's proxy -> replica hop costs by itself, so wa-ray minus serve-trivial is "
        "what the application adds.",
    ]
    env.cleanup = cleanup
    env.finish()
    return env, write(env, _markdown(env), cfg.out_dir or Path(__file__).resolve().parent / "results",
                      plot=lambda p: _plot(env, p))


def _ratios(phases: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    bare = phases.get("bare")
    for name in ("serve-trivial", "wa-ray"):
        if name in phases and bare:
            for q in ("p50", "p99"):
                out[f"{name}/bare {q}"] = ratio(phases[name]["latency_ms"][q], bare["latency_ms"][q])
    if "wa-ray" in phases and "serve-trivial" in phases:
        for q in ("p50", "p99"):
            out[f"wa-ray/serve-trivial {q}"] = ratio(phases["wa-ray"]["latency_ms"][q],
                                                     phases["serve-trivial"]["latency_ms"][q])
    return out


def _markdown(env: Envelope) -> str:
    rows = []
    for name, p in env.results["phases"].items():
        lat, slip = p["latency_ms"], p["schedule_slip_ms"]
        comp = ", ".join(f"{k} {v:.2f}" for k, v in list(p["cpu"]["by_component_cores"].items())[:5])
        rows.append([name, p["requests"], p["ok"], p["completed_rps"], lat["p50"], lat["p90"], lat["p99"], lat["max"],
                     slip["p99"], p["loadavg_1m_at_start"],
                     f"machine {p['cpu']['machine_busy_cores']}, others {p['cpu']['others_busy_cores']}; {comp}"])
    cpu_rows = []
    for name, p in env.results["phases"].items():
        c, rd = p.get("cpu_ms_per_request") or {}, p.get("redis_per_202") or {}
        server = {"bare": "bare-starlette", "serve-trivial": "ray::ServeReplica(BenchTrivial)"}.get(
            name.split(" ")[0], "ray::ServeReplica(Ingress)")
        cpu_rows.append([name, c.get("serving"), c.get("ray::ProxyActor"), c.get(server), c.get("redis-server"),
                         rd.get("commands"),
                         ", ".join(f"{k} {v}" for k, v in list((rd.get("by_command") or {}).items())[:6])])
    r = env.results
    prof = []
    for name, p in env.results["phases"].items():
        for proc, summ in (p.get("profile") or {}).items():
            fn = ", ".join(f"{k} {v:.0%}" for k, v in list(summ["self_by_function"].items())[:6])
            inc = ", ".join(f"{k} {v:.0%}" for k, v in list(summ["inclusive_project"].items())[:6])
            prof.append(f"- {name} / {proc} ({summ['samples']} samples): self {fn}; inclusive wa-ray {inc}")
    if prof:
        prof = ["py-spy (GIL-holding samples) during the wa-ray phase:", "", *prof, ""]
    return "\n".join([
        "## Result", "",
        f"{r['rate_rps']:g} requests/s open loop for {r['duration_s']:g} s per target (+{r['warmup_s']:g} s warm-up).",
        "",
        table(["target", "requests", "202", "completed/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "slip p99 ms",
               "load 1m", "CPU cores (top components)"], rows), "",
        "Ratios: " + ", ".join(f"{k} **{v}**" for k, v in r["ratios"].items()) + ".", "",
        "CPU per request (ms, the phase's CPU over the requests it issued, warm-up included; serving total = the "
        "processes this target's requests go through) and Redis commands per 202 (commands inside Lua scripts "
        "counted one by one; everything the service did meanwhile included):", "",
        table(["target", "serving total", "Serve proxy", "replica / server", "redis-server", "Redis cmds / 202",
               "top commands"], cpu_rows), "",
        "Status codes: " + "; ".join(f"{k} {p['status_codes']}" for k, p in r["phases"].items()) + ".", "",
    ] + prof + ([f"Errors: {r['errors']}", ""] if r.get("errors") else []) + [
        f"- {name} answered {status}: `{bodies[0][:200]}`" for name, p in r["phases"].items()
        for status, bodies in (p.get("error_bodies") or {}).items() if bodies] + [""])


def _plot(env: Envelope, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = env.results["phases"]
    if not phases:
        return False
    names = list(phases)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = range(len(names))
    for q, off, color in (("p50", -0.2, "tab:blue"), ("p99", 0.2, "tab:orange")):
        vals = [phases[n]["latency_ms"][q] or 0 for n in names]
        ax.bar([x + off for x in xs], vals, width=0.4, label=q, color=color)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.set_title(f"POST latency at {env.results['rate_rps']:g} req/s open loop", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def summary(env: Envelope) -> Any:
    from rich.table import Table

    t = Table(title=f"wa-ray api at {env.results['rate_rps']:g} req/s")
    for col in ("target", "202/requests", "p50 ms", "p99 ms", "slip p99 ms"):
        t.add_column(col)
    for name, p in env.results["phases"].items():
        t.add_row(name, f"{p['ok']}/{p['requests']}", str(p["latency_ms"]["p50"]), str(p["latency_ms"]["p99"]),
                  str(p["schedule_slip_ms"]["p99"]))
    return t
