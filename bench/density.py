"""`python -m wa_ray.bench density --sessions 10,25,50`: memory (PSS) per live, linked session.

Three ways of holding N linked WhatsApp Web sessions, measured one after the
other in the same run (each fully stopped before the next starts):

* **wa-ray**: the whole service (bench.harness); sessions linked through the
  real path (QR on SSE, phone API scan). Per session = (every SessionActor
  process, none with the default host hosting where sessions are grains in the
  BrowserHost + the BrowserHost process + its Playwright driver + every Chromium
  process under it) / N. The hosting mode is in the machine table. The fixed cost (Ray core processes, Serve, Redis, the
  supervisor/dispatcher/cloud-sender singletons) is reported apart, not per session.
* **playwright**: the naive design, one `chromium.launch()` per session (raw
  Playwright, bench/pw_fleet.py in a child process), each page linked to the
  simulator the same way. Per session = (that Python process + its driver +
  every Chromium) / N.
* **wwebjs**: the npm whatsapp-web.js 1.34.7 (bench/wwebjs_fleet.js), N clients
  with LocalAuth in one node process, one Chromium each. Per session = (the node
  process + every Chromium under it) / N.

Sizes are grown in order (link up to 10, measure, link up to 25, measure...).
Before each size the bench estimates what it will need from the per-session
figure so far and skips the size if it would leave less than `--min-free-gib`
available on the machine. After linking it waits `--settle` seconds, takes
`--samples` samples 2 s apart, and reports the median of each group.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from wa_ray.bench.fleet import Fleet, FleetError, playwright_fleet, wwebjs_fleet
from wa_ray.bench.memory import Mem, Proc, chromium_kinds, descendants, is_chromium, is_node, process_table, rollup, to_mb
from wa_ray.bench.output import Envelope, machine_without_service, progress, ratio, table, write
from wa_ray.bench.report import to_jsonable

METHODS = ("wa-ray", "playwright", "wwebjs")
GOAL_PER_SESSION_MB = 110.0
GOAL_RATIO_VS_WWEBJS = 2.5
PRIOR_MB = {"wa-ray": 170.0, "playwright": 400.0, "wwebjs": 400.0}  # before anything is measured
PER_SESSION_GROUPS = {
    "wa-ray": ("SessionActor", "BrowserHost", "playwright driver", "chromium", "host other"),
    "playwright": ("python app", "playwright driver", "chromium", "other"),
    "wwebjs": ("node", "chromium", "other"),
}
FIXED_GROUPS = ("Ray core", "Serve", "Redis", "wa-ray singletons")


@dataclass(frozen=True)
class DensityConfig:
    sizes: list[int]
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    out_dir: Path | None = None
    link_concurrency: int = 4
    settle_s: float = 5.0
    samples: int = 3
    min_free_gib: float = 2.0


# ------------------------------------------------------------------ sampling
def _median_mem(samples: list[dict[str, Mem]]) -> dict[str, Mem]:
    groups = {g for s in samples for g in s}
    out = {}
    for g in groups:
        mems = [s.get(g, Mem()) for s in samples]
        med = Mem()
        for f in ("rss", "pss", "pss_anon", "pss_file", "pss_shmem", "private_clean", "private_dirty", "swap",
                  "processes"):
            xs = sorted(getattr(m, f) for m in mems)
            setattr(med, f, xs[len(xs) // 2])
        out[g] = med
    return out


def _wa_ray_groups(host_pid: int, receiver_pid: int | None) -> tuple[dict[str, list[int]], dict[int, Proc]]:
    table = process_table()
    ours = descendants(os.getpid(), table)
    host_tree = descendants(host_pid, table)
    receiver_tree = ({receiver_pid} | descendants(receiver_pid, table)) if receiver_pid else set()
    groups: dict[str, list[int]] = {}
    for pid in ours:
        proc = table.get(pid)
        if proc is None:
            continue
        title = proc.title
        if pid in receiver_tree or "resource_tracker" in title:
            group = "bench (not counted)"
        elif pid == host_pid:
            group = "BrowserHost"
        elif pid in host_tree:
            group = "chromium" if is_chromium(proc) else ("playwright driver" if is_node(proc) else "host other")
        elif title.startswith("ray::SessionActor"):
            group = "SessionActor"
        elif title.startswith(("ray::SessionSupervisor", "ray::WebhookDispatcher", "ray::CloudSender")):
            group = "wa-ray singletons"
        elif title.startswith(("ray::ServeController", "ray::ProxyActor", "ray::ServeReplica")):
            group = "Serve"
        elif "redis-server" in title:
            group = "Redis"
        else:
            group = "Ray core"  # gcs_server, raylet, agents, log monitor, idle workers
        groups.setdefault(group, []).append(pid)
    return groups, table


def _fleet_groups(fleet: Fleet, root_group: str) -> tuple[dict[str, list[int]], dict[int, Proc]]:
    table = process_table()
    pids = {fleet.pid} | descendants(fleet.pid, table)
    fleet._seen |= pids
    groups: dict[str, list[int]] = {}
    for pid in pids:
        proc = table.get(pid)
        if proc is None:
            continue
        if pid == fleet.pid:
            group = root_group
        elif is_chromium(proc):
            group = "chromium"
        elif is_node(proc):
            group = "playwright driver"
        else:
            group = "other"
        groups.setdefault(group, []).append(pid)
    return groups, table


def _measure(groups: dict[str, list[int]]) -> dict[str, Mem]:
    out: dict[str, Mem] = {}
    for g, pids in groups.items():
        m = Mem()
        for pid in pids:
            r = rollup(pid)
            if r is not None:
                m = m + r
        out[g] = m
    return out


def _process_detail(groups: dict[str, list[int]], table: dict[int, Proc], wanted: tuple[str, ...]) -> list[dict]:
    rows = []
    for g in wanted:
        for pid in groups.get(g, []):
            r = rollup(pid)
            proc = table.get(pid)
            if r is None or proc is None:
                continue
            name = proc.argv[0] if proc.argv else "?"
            name = os.path.basename(name.split(" ")[0]) if name.startswith("/") else name[:70]
            if name.startswith("python") and len(proc.argv) > 1:
                name = "python " + " ".join(os.path.basename(a) for a in proc.argv[1:3])[:70]
            rows.append({"group": g, "pid": pid, "process": name, "pss_mb": to_mb(r.pss), "uss_mb": to_mb(r.uss),
                         "rss_mb": to_mb(r.rss)})
    return sorted(rows, key=lambda r: (r["group"], -r["pss_mb"]))


def _summarise(method: str, n: int, med: dict[str, Mem], kinds: dict[str, int], link_s: list[float],
               extra: dict[str, Any]) -> dict[str, Any]:
    per_groups = PER_SESSION_GROUPS[method]
    session_total = Mem()
    for g in per_groups:
        session_total = session_total + med.get(g, Mem())
    out: dict[str, Any] = {
        "sessions": n,
        "per_session_pss_mb": round(to_mb(session_total.pss) / n, 1),
        "per_session_pss_anon_shmem_mb": round(to_mb(session_total.pss_anon + session_total.pss_shmem) / n, 1),
        "per_session_uss_mb": round(to_mb(session_total.uss) / n, 1),
        "per_session_rss_mb": round(to_mb(session_total.rss) / n, 1),
        "total_pss_mb": to_mb(session_total.pss),
        "groups": {g: {**med[g].mb(), "per_session_pss_mb": round(to_mb(med[g].pss) / n, 1)}
                   for g in sorted(med)},
        "chromium_processes": kinds,
        "link_s": {"n": len(link_s), "median": sorted(link_s)[len(link_s) // 2] if link_s else None,
                   "max": max(link_s) if link_s else None},
        **extra,
    }
    if method == "wa-ray":
        fixed = Mem()
        for g in FIXED_GROUPS:
            fixed = fixed + med.get(g, Mem())
        host_driver = med.get("BrowserHost", Mem()) + med.get("playwright driver", Mem()) + med.get("host other", Mem())
        out["breakdown_per_session_pss_mb"] = {
            "SessionActor process": round(to_mb(med.get("SessionActor", Mem()).pss) / n, 1),
            "Chromium (contexts + shared browser processes)": round(to_mb(med.get("chromium", Mem()).pss) / n, 1),
            "BrowserHost + Playwright driver, amortised": round(to_mb(host_driver.pss) / n, 1),
        }
        out["fixed_cost_pss_mb"] = {**{g: to_mb(med.get(g, Mem()).pss) for g in FIXED_GROUPS},
                                    "total": to_mb(fixed.pss)}
    elif method == "playwright":
        app = med.get("python app", Mem()) + med.get("playwright driver", Mem()) + med.get("other", Mem())
        out["breakdown_per_session_pss_mb"] = {
            "Chromium (a browser each)": round(to_mb(med.get("chromium", Mem()).pss) / n, 1),
            "Python app + Playwright driver, amortised": round(to_mb(app.pss) / n, 1),
        }
    else:
        app = med.get("node", Mem()) + med.get("other", Mem())
        out["breakdown_per_session_pss_mb"] = {
            "Chromium (a browser each)": round(to_mb(med.get("chromium", Mem()).pss) / n, 1),
            "node process, amortised": round(to_mb(app.pss) / n, 1),
        }
    return out


def _room_for(method: str, add: int, per_session_mb: float | None, min_free_gib: float) -> tuple[bool, str]:
    per = max(per_session_mb or 0.0, PRIOR_MB[method] * 0.6) if per_session_mb else PRIOR_MB[method]
    need_gib = add * per * 1.3 * 1e6 / 2**30
    avail_gib = psutil.virtual_memory().available / 2**30
    ok = avail_gib - need_gib >= min_free_gib
    return ok, f"{add} more sessions need ~{need_gib:.1f} GiB, {avail_gib:.1f} GiB available (keep {min_free_gib:g})"


async def _sample_loop(cfg: DensityConfig, take: Any) -> list[Any]:
    await asyncio.sleep(cfg.settle_s)
    samples = []
    for k in range(cfg.samples):
        if k:
            await asyncio.sleep(2.0)
        samples.append(take())
    return samples


# ------------------------------------------------------------------ wa-ray
def _host_pid() -> int:
    import ray

    from wa_ray import NAMESPACE

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
    return int(ray.get(ray.get_actor(names[0], namespace=NAMESPACE).ping.remote(), timeout=30)["pid"])


async def wa_ray_steps(cfg: DensityConfig, harness: Any, live: Any, console: Console) -> dict[str, Any]:
    """Grow the linked sessions of `live` through cfg.sizes, measuring at each; the harness stays up."""
    from wa_ray.bench.harness import WORKSPACE

    host_pid = _host_pid()
    receiver_pid = harness.receiver.pid if harness.receiver else None
    steps: list[dict[str, Any]] = []
    out: dict[str, Any] = {"steps": steps}
    if not live.links:  # the empty service: what is there before any session
        groups, table_ = _wa_ray_groups(host_pid, receiver_pid)
        out["empty_service"] = {
            "groups": {g: m.mb() for g, m in sorted(_measure(groups).items())},
            "processes": _process_detail(groups, table_, (*FIXED_GROUPS, "BrowserHost", "playwright driver", "chromium"))}
    linked = len(live.links)
    with progress(console) as bar:
        task = bar.add_task("wa-ray: linking", total=max(cfg.sizes), completed=linked, info="")
        for size in cfg.sizes:
            if size < linked:
                continue
            per = steps[-1]["per_session_pss_mb"] if steps else None
            ok, why = _room_for("wa-ray", size - linked, per, cfg.min_free_gib)
            if not ok:
                steps.append({"sessions": size, "skipped": why})
                console.print(f"[yellow]wa-ray: skipping {size}: {why}[/]")
                break
            if size > linked:
                await live.link(size - linked, concurrency=cfg.link_concurrency, start=linked,
                                on_linked=lambda l: bar.update(task, advance=1, info=f"{l.session_id} {l.link_s:.1f}s"))
            linked = size
            bar.update(task, info=f"{size} linked; settling and sampling")
            sessions = (await live.api.get(f"/v1/workspaces/{WORKSPACE}/sessions")).json()
            connected = sum(1 for s in sessions if s["state"] == "connected")
            last: dict[str, Any] = {}

            def take() -> dict[str, Mem]:
                g, t = _wa_ray_groups(host_pid, receiver_pid)
                last["groups"], last["table"] = g, t
                return _measure(g)

            samples = await _sample_loop(cfg, take)
            after = (await live.api.get(f"/v1/workspaces/{WORKSPACE}/sessions")).json()
            med = _median_mem(samples)
            kinds = chromium_kinds(last["groups"].get("chromium", []), last["table"])
            step = _summarise("wa-ray", size, med, kinds, [l.link_s for l in live.links[:size]], {
                "connected_before_sampling": connected,
                "connected_after_sampling": sum(1 for s in after if s["state"] == "connected"),
                "session_actor_processes": len(last["groups"].get("SessionActor", [])),
                "fixed_processes": _process_detail(last["groups"], last["table"], FIXED_GROUPS),
            })
            steps.append(step)
            console.print(f"wa-ray {size}: {step['per_session_pss_mb']} MB PSS per session "
                          f"({step['breakdown_per_session_pss_mb']}); fixed {step['fixed_cost_pss_mb']['total']} MB")
    return out


def _run_wa_ray(cfg: DensityConfig, console: Console) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from wa_ray.bench.harness import Harness, HarnessOptions, Live

    harness = Harness(HarnessOptions(sessions=max(cfg.sizes), pacing=True))
    console.print("wa-ray: starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    result: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    try:
        machine = to_jsonable(harness.machine())

        async def body() -> dict[str, Any]:
            async with Live(harness, webhook=False) as live:
                return await wa_ray_steps(cfg, harness, live, console)

        result = asyncio.run(body())
    finally:
        cleanup = to_jsonable(harness.stop())
    return result, cleanup, machine


# ------------------------------------------------------------------ baselines
def run_fleet(method: str, cfg: DensityConfig, sim_url: str, console: Console) -> tuple[dict[str, Any], dict]:
    from wa_ray.runtime import CHROMIUM_BASE_FLAGS, default_chromium

    chromium = default_chromium() or "/usr/bin/chromium"
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wa-ray-bench-fleet-") as tmp:
        if method == "wwebjs":
            fleet = wwebjs_fleet(sim_url, Path(tmp) / "auth", chromium, CHROMIUM_BASE_FLAGS)
            root_group, phone_prefix = "node", "1555500"
        else:
            fleet = playwright_fleet(sim_url, chromium)
            root_group, phone_prefix = "python app", "1555400"
        killed: list[str] = []
        try:
            fleet.start()
            linked = 0
            link_s: list[float] = []
            with progress(console) as bar:
                task = bar.add_task(f"{method}: linking", total=max(cfg.sizes), info="")
                for size in cfg.sizes:
                    per = steps[-1]["per_session_pss_mb"] if steps else None
                    ok, why = _room_for(method, size - linked, per, cfg.min_free_gib)
                    if not ok:
                        steps.append({"sessions": size, "skipped": why})
                        console.print(f"[yellow]{method}: skipping {size}: {why}[/]")
                        break
                    fleet.send({"cmd": "grow", "n": size, "concurrency": cfg.link_concurrency,
                                "phone_prefix": phone_prefix})

                    def on_event(msg: dict[str, Any]) -> None:
                        if msg.get("ev") == "linked":
                            bar.update(task, advance=1, info=f"#{msg['i']} {msg['s']:.1f}s")

                    try:
                        grown = fleet.wait_for("grown", timeout_s=120 + 30 * (size - linked), on_event=on_event)
                    except FleetError as exc:
                        steps.append({"sessions": size, "skipped": f"linking failed: {exc}"[:600]})
                        console.print(f"[red]{method}: {size} failed: {exc}[/]")
                        break
                    link_s += grown.get("link_s", [])
                    linked = size
                    bar.update(task, info=f"{size} linked; settling and sampling")
                    last: dict[str, Any] = {}

                    def take() -> dict[str, Mem]:
                        g, t = _fleet_groups(fleet, root_group)
                        last["groups"], last["table"] = g, t
                        return _measure(g)

                    samples = asyncio.run(_sample_loop(cfg, take))
                    med = _median_mem(samples)
                    kinds = chromium_kinds(last["groups"].get("chromium", []), last["table"])
                    step = _summarise(method, size, med, kinds, link_s, {
                        "browsers": kinds.get("browser", 0)})
                    steps.append(step)
                    console.print(f"{method} {size}: {step['per_session_pss_mb']} MB PSS per session "
                                  f"({step['breakdown_per_session_pss_mb']})")
        except FleetError as exc:
            steps.append({"error": str(exc)[:800]})
            console.print(f"[red]{method}: {exc}[/]")
        finally:
            killed = fleet.stop()
    return {"steps": steps}, {"leftovers_killed": killed}


# ------------------------------------------------------------------ entry point
def run_density(cfg: DensityConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.simulator.wa_web.testing import running_web_simulator

    methods: dict[str, Any] = {}
    cleanup: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    env = Envelope("density")
    for method in METHODS:
        if method not in cfg.methods:
            continue
        started = time.monotonic()
        if method == "wa-ray":
            methods[method], cleanup[method], machine = _run_wa_ray(cfg, console)
        else:
            with running_web_simulator() as sim:
                methods[method], cleanup[method] = run_fleet(method, cfg, sim.url, console)
        methods[method]["wall_s"] = round(time.monotonic() - started, 1)
        methods[method]["available_gib_after_stop"] = round(psutil.virtual_memory().available / 2**30, 2)
    return finish(env, cfg, methods, machine, cleanup)


def finish(env: Envelope, cfg: DensityConfig, methods: dict[str, Any], machine: dict[str, Any],
           cleanup: dict[str, Any]) -> tuple[Envelope, dict[str, Path]]:
    env.machine = machine or machine_without_service()
    env.results = {"sizes": cfg.sizes, "methods": methods, "comparison": _compare(methods, cfg.sizes),
                   "settle_s": cfg.settle_s, "samples": cfg.samples}
    _goals(env, methods)
    env.notes += [
        "PSS from /proc/<pid>/smaps_rollup, MB = 10^6 bytes. Shared pages are divided among every process "
        "mapping them, including other users' processes on this shared machine (e.g. their Chromiums map the same "
        "libchromium): PSS anon+shmem (unaffected by them) and USS (private only) are in the JSON per group.",
        "per session = the method's per-session processes / N (wa-ray: SessionActor processes + BrowserHost + "
        "Playwright driver + all Chromium under it; playwright: the Python app + driver + every browser; "
        "whatsapp-web.js: the node process + every Chromium). wa-ray's fixed cost (Ray core, Serve, Redis, "
        "singletons) is reported apart.",
        "marginal = (per-session processes at the largest size - at the smallest) / (difference in sessions): what "
        "one more session costs once the fixed parts are paid.",
        "Each method is started, measured at every size, and stopped (every process checked gone) before the next.",
        f"Chromium binary {env.machine.get('chromium', '?')}. The peers run with the design's launch flags "
        "(wa_ray.runtime.CHROMIUM_BASE_FLAGS), as their users would; wa-ray adds one it measured "
        "(wa_ray.runtime.NO_OMNIBOX_POPUP: headless Chromium 156 preloads an address-bar dropdown in a second "
        "renderer per window, ~35 MB; off, in a standalone run of 20 contexts, 67-71 -> 32 MB per context). A "
        "peer that adopted the same flag would save about as much per browser.",
    ]
    env.cleanup = cleanup
    env.finish()
    return env, write(env, _markdown(env), cfg.out_dir or Path(__file__).resolve().parent / "results",
                      plot=lambda p: _plot(env, p))


def _measured(method: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [s for s in (method or {}).get("steps", []) if "per_session_pss_mb" in s]


def _marginal(steps: list[dict[str, Any]]) -> float | None:
    if len(steps) < 2:
        return None
    a, b = steps[0], steps[-1]
    return round((b["total_pss_mb"] - a["total_pss_mb"]) / (b["sessions"] - a["sessions"]), 1)


def _compare(methods: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"by_size": [], "marginal_pss_mb": {}}
    for name in methods:
        out["marginal_pss_mb"][name] = _marginal(_measured(methods[name]))
    for n in sizes:
        row: dict[str, Any] = {"sessions": n}
        for name in methods:
            hit = [s for s in _measured(methods[name]) if s["sessions"] == n]
            row[name] = hit[0]["per_session_pss_mb"] if hit else None
        row["wwebjs_over_wa_ray"] = ratio(row.get("wwebjs"), row.get("wa-ray"))
        row["playwright_over_wa_ray"] = ratio(row.get("playwright"), row.get("wa-ray"))
        out["by_size"].append(row)
    return out


def _goals(env: Envelope, methods: dict[str, Any]) -> None:
    wa = _measured(methods.get("wa-ray"))
    if wa:
        top = wa[-1]
        env.goal(f"wa-ray PSS per linked session at {top['sessions']}", f"<= {GOAL_PER_SESSION_MB:g} MB",
                 f"{top['per_session_pss_mb']} MB", top["per_session_pss_mb"] <= GOAL_PER_SESSION_MB)
    rows = [r for r in env.results["comparison"]["by_size"] if r.get("wwebjs_over_wa_ray") is not None]
    if rows:
        top = rows[-1]
        env.goal(f"whatsapp-web.js / wa-ray PSS per session at {top['sessions']}", f">= {GOAL_RATIO_VS_WWEBJS:g}x",
                 f"{top['wwebjs_over_wa_ray']}x ({top['wwebjs']} vs {top['wa-ray']} MB)",
                 top["wwebjs_over_wa_ray"] >= GOAL_RATIO_VS_WWEBJS)


def _markdown(env: Envelope) -> str:
    res = env.results
    methods = res["methods"]
    lines = ["## Per session (PSS, MB)", ""]
    names = [m for m in METHODS if m in methods]
    rows = []
    for r in res["comparison"]["by_size"]:
        rows.append([r["sessions"], *[r.get(m) for m in names], r.get("wwebjs_over_wa_ray"),
                     r.get("playwright_over_wa_ray")])
    lines += [table(["sessions", *[f"{m} MB/session" for m in names], "wwebjs / wa-ray", "playwright / wa-ray"],
                    rows), ""]
    marg = res["comparison"]["marginal_pss_mb"]
    lines += ["Marginal PSS of one more session (slope between the smallest and largest size): "
              + ", ".join(f"{m} {marg.get(m)} MB" for m in names) + ".", ""]
    for m in names:
        lines += [f"## {m}", ""]
        steps = methods[m].get("steps", [])
        for s in steps:
            if "per_session_pss_mb" not in s:
                lines += [f"- {s.get('sessions', '')}: {s.get('skipped') or s.get('error')}", ""]
        good = [s for s in steps if "per_session_pss_mb" in s]
        if not good:
            continue
        keys = list(good[0]["breakdown_per_session_pss_mb"])
        rows = [[s["sessions"], s["per_session_pss_mb"], *[s["breakdown_per_session_pss_mb"][k] for k in keys],
                 s["per_session_uss_mb"], s["per_session_pss_anon_shmem_mb"], s["per_session_rss_mb"],
                 " ".join(f"{k}:{v}" for k, v in s["chromium_processes"].items())] for s in good]
        lines += [table(["sessions", "PSS/session", *keys, "USS/session", "PSS anon+shmem/session", "RSS/session",
                         "Chromium processes"], rows), ""]
        if m == "wa-ray":
            rows = [[s["sessions"], *[s["fixed_cost_pss_mb"][g] for g in (*FIXED_GROUPS, "total")],
                     s["connected_after_sampling"], s["session_actor_processes"]] for s in good]
            lines += ["Fixed cost, not per session (PSS MB):", "",
                      table(["sessions", *FIXED_GROUPS, "total", "connected", "SessionActor processes"], rows), ""]
            empty = methods[m].get("empty_service", {}).get("groups", {})
            if empty:
                lines += ["Empty service before any session (PSS MB): "
                          + ", ".join(f"{g} {v['pss_mb']}" for g, v in empty.items()) + ".", ""]
        lines += [f"Link time per session (s): median {good[-1]['link_s']['median']}, max {good[-1]['link_s']['max']}; "
                  f"wall time for this method {methods[m].get('wall_s')} s.", ""]
    return "\n".join(lines)


def _plot(env: Envelope, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = env.results["methods"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m, style in (("wa-ray", "o-"), ("playwright", "s-"), ("wwebjs", "^-")):
        steps = _measured(methods.get(m))
        if steps:
            xs = [s["sessions"] for s in steps]
            left.plot(xs, [s["per_session_pss_mb"] for s in steps], style, label=m)
            right.plot(xs, [s["total_pss_mb"] / 1000 for s in steps], style, label=m)
    left.axhline(GOAL_PER_SESSION_MB, color="red", linestyle="--", linewidth=1, label=f"goal {GOAL_PER_SESSION_MB:g} MB")
    left.set_xlabel("linked sessions")
    left.set_ylabel("PSS MB per session")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    left.set_title("PSS per session")
    right.set_xlabel("linked sessions")
    right.set_ylabel("GB PSS (per-session processes)")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    right.set_title("total (fixed cost of wa-ray not included)")
    fig.suptitle(f"density; {env.machine.get('nproc')} cores, {env.machine.get('ram_total_gib')} GiB; {env.created_at}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def summary(env: Envelope) -> Any:
    from rich.table import Table

    res = env.results
    names = [m for m in METHODS if m in res["methods"]]
    t = Table(title="wa-ray density: PSS MB per linked session")
    for col in ("sessions", *names, "wwebjs/wa-ray"):
        t.add_column(col, justify="right")
    for r in res["comparison"]["by_size"]:
        t.add_row(str(r["sessions"]), *[str(r.get(m)) for m in names], str(r.get("wwebjs_over_wa_ray")))
    return t
