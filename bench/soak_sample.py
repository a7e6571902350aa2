"""One soak sample: memory, open fds and asyncio tasks of every process the bench started, grouped by
component, plus Redis's own memory and clients.

Processes are the bench process's descendants (Ray's gcs_server and raylet, every worker and actor,
Chromium under the BrowserHost, Redis, the webhook receiver), labelled as the CPU accounting labels them
(bench/machine.py: component_of), so a component's figure is the sum over its processes at that moment:
one more process is growth too. Memory per process is /proc/<pid>/smaps_rollup (bench/memory.py): PSS is
the headline, RSS and USS are kept. Open fds are the entries of /proc/<pid>/fd.

asyncio tasks: every named Ray actor (ours and Serve's) answers through `__ray_call__` with its pid and
its pending tasks (bench/soak_probe.py), and the Ingress replica also reports `wa_ingress_asyncio_tasks` on
GET /metrics (kept apart: it counts the user-code loop only). Other processes (raylet, Chromium, Redis)
have no asyncio: their task count is None, not 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from wa_ray.bench.machine import CpuAccount, CpuSnapshot, component_of
from wa_ray.bench.memory import rollup

BENCH = "bench (load + simulator)"
RECEIVER = "bench webhook receiver"
BENCH_HELPER = "bench helper"
DASHBOARD = "ray dashboard"
NOT_SERVICE = frozenset({BENCH, RECEIVER, BENCH_HELPER})
PROBE_TIMEOUT_S = 10.0
_TASKS_LINE = re.compile(r'^wa_ingress_asyncio_tasks\{replica="([^"]*)"\}\s+([0-9.eE+-]+)', re.MULTILINE)


@dataclass(frozen=True)
class ProcSample:
    pid: int
    component: str
    rss_kb: int
    pss_kb: int
    uss_kb: int
    fds: int | None
    tasks: int | None = None


@dataclass
class Sample:
    t_s: float  # seconds since the load started
    wall: float  # wall clock when taken
    took_s: float  # how long taking it took (it runs beside the load)
    components: dict[str, dict[str, Any]]  # component -> processes, rss/pss/uss MB, fds, tasks
    redis: dict[str, Any]
    ingress_metrics_tasks: dict[str, int]  # replica pid -> wa_ingress_asyncio_tasks
    cpu: dict[str, Any]  # service busy cores since the previous sample
    errors: list[str] = field(default_factory=list)
    window: dict[str, Any] = field(default_factory=dict)  # outbound accepted since the previous sample
    inbound_window: dict[str, Any] = field(default_factory=dict)  # inbound sent by a phone since then
    procs: list[ProcSample] = field(default_factory=list)  # per process; in the JSON only with --raw

    def series(self, component: str, key: str) -> float | None:
        row = self.components.get(component)
        return None if row is None else row.get(key)


def label(proc: psutil.Process, bench_pid: int, receiver_pid: int | None) -> str:
    """component_of, with the bench's own processes named, Ray's dashboard (a head process and a process
    per module) as one component, and Ray's other python helpers by script."""
    if proc.pid == bench_pid:
        return BENCH
    if receiver_pid is not None and proc.pid == receiver_pid:
        return RECEIVER
    name = component_of(proc)
    if name.startswith("ray-dashboard-"):  # setproctitle'd module processes: ray-dashboard-NodeHead-0, ...
        return DASHBOARD
    if name != "python(other ray helper)":
        return name
    with contextlib.suppress(psutil.Error):
        cmd = proc.cmdline()
        if any("multiprocessing" in a for a in cmd):  # a resource tracker: the bench's, or the dashboard's
            return BENCH_HELPER if proc.ppid() in (bench_pid, receiver_pid) else "ray helper (multiprocessing)"
        script = next((a for a in cmd if a.endswith(".py")), "")
        if script.endswith("dashboard/dashboard.py"):
            return DASHBOARD
        if script:  # dashboard/agent.py, _private/log_monitor.py, ...
            path = Path(script)
            return f"ray helper ({path.parent.name}/{path.stem})"
    return name


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def scan_processes(bench_pid: int, receiver_pid: int | None) -> list[ProcSample]:
    """Every descendant of the bench process (and itself): labelled, with memory and fds. Blocking."""
    try:
        root = psutil.Process(bench_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    out: list[ProcSample] = []
    for proc in procs:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            name = label(proc, bench_pid, receiver_pid)
        except psutil.Error:
            continue
        mem = rollup(proc.pid)
        if mem is None:  # gone meanwhile
            continue
        out.append(ProcSample(proc.pid, name, mem.rss, mem.pss, mem.uss, _fds(proc.pid)))
    return out


def by_component(procs: list[ProcSample]) -> dict[str, dict[str, Any]]:
    """Sums per component; `tasks` only over the processes that reported one (None if none did)."""
    out: dict[str, dict[str, Any]] = {}
    for p in procs:
        row = out.setdefault(p.component, {"processes": 0, "rss_kb": 0, "pss_kb": 0, "uss_kb": 0, "fds": 0,
                                           "tasks": None})
        row["processes"] += 1
        row["rss_kb"] += p.rss_kb
        row["pss_kb"] += p.pss_kb
        row["uss_kb"] += p.uss_kb
        row["fds"] += p.fds or 0
        if p.tasks is not None and p.tasks >= 0:
            row["tasks"] = (row["tasks"] or 0) + p.tasks
    service = [p for p in procs if p.component not in NOT_SERVICE]
    out["service total"] = {"processes": len(service), "rss_kb": sum(p.rss_kb for p in service),
                            "pss_kb": sum(p.pss_kb for p in service), "uss_kb": sum(p.uss_kb for p in service),
                            "fds": sum(p.fds or 0 for p in service),
                            "tasks": sum(p.tasks for p in service if p.tasks is not None and p.tasks >= 0)}
    for row in out.values():  # MB (10^6 bytes) in the report, as the density bench
        for key in ("rss", "pss", "uss"):
            row[f"{key}_mb"] = round(row.pop(f"{key}_kb") * 1024 / 1e6, 1)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ actors
class ActorProbe:
    """asyncio task counts of every named Ray actor, by pid (handles cached between samples)."""

    def __init__(self) -> None:
        self._handles: dict[tuple[str, str], Any] = {}

    async def tasks_by_pid(self) -> tuple[dict[int, int], list[str]]:
        import ray
        from wa_ray.bench.soak_probe import pid_and_tasks

        errors: list[str] = []
        try:
            named = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        except Exception as exc:  # noqa: BLE001 - a sample without task counts is still a sample
            return {}, [f"list_named_actors: {type(exc).__name__}: {exc}"[:200]]
        keys = [(a["namespace"], a["name"]) for a in named]
        for key in [k for k in self._handles if k not in keys]:
            del self._handles[key]

        async def one(key: tuple[str, str]) -> tuple[int, int] | None:
            try:
                if key not in self._handles:
                    self._handles[key] = await asyncio.to_thread(ray.get_actor, key[1], namespace=key[0])
                ref = self._handles[key].__ray_call__.remote(pid_and_tasks)
                pid, n = await asyncio.wait_for(asyncio.wrap_future(ref.future()), PROBE_TIMEOUT_S)
                return int(pid), int(n)
            except Exception as exc:  # noqa: BLE001 - a dead or busy actor: recorded, the rest still count
                self._handles.pop(key, None)
                errors.append(f"{key[1]}: {type(exc).__name__}"[:200])
                return None

        got = await asyncio.gather(*(one(k) for k in keys))
        return {r[0]: r[1] for r in got if r is not None}, errors


def ingress_tasks(metrics_text: str) -> dict[str, int]:
    """`wa_ingress_asyncio_tasks{replica="<pid>"} N` lines of GET /metrics."""
    return {m.group(1): int(float(m.group(2))) for m in _TASKS_LINE.finditer(metrics_text)}


# ------------------------------------------------------------------ Redis
def _merged(info: dict[str, Any]) -> dict[str, Any]:
    """A cluster client answers INFO per node: the nodes' numbers are added up."""
    if "used_memory" in info or "connected_clients" in info:
        return info
    out: dict[str, Any] = {}
    for node in info.values():
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, (int, float)):
                    out[k] = out.get(k, 0) + v
    return out


def redis_sample(url: str) -> dict[str, Any]:
    from wa_ray.storage.redis_client import connect_sync

    client = connect_sync(url)
    try:
        mem = _merged(client.info("memory"))
        clients = _merged(client.info("clients"))
        keys = client.dbsize()
        if isinstance(keys, dict):
            keys = sum(keys.values())
    finally:
        client.close()
    return {"used_memory_mb": round(int(mem.get("used_memory", 0)) / 1e6, 2),
            "used_memory_rss_mb": round(int(mem.get("used_memory_rss", 0)) / 1e6, 2),
            "connected_clients": int(clients.get("connected_clients", 0)), "keys": int(keys)}


_ID_SEGMENT = re.compile(r"\d")


def key_pattern(key: str) -> str:
    """`wa:{bench}:msg:msg_5f0c...` -> `wa:{bench}:msg:*`: past the prefix and the hash tag, a segment with
    a digit in it is an id."""
    parts = key.split(":")
    return ":".join(p if i < 2 or not _ID_SEGMENT.search(p) else "*" for i, p in enumerate(parts))


def redis_keys_by_pattern(url: str, max_keys: int = 1_000_000, top: int = 15) -> dict[str, Any]:
    """Keys and their MEMORY USAGE grouped by pattern: what Redis holds, to explain its growth. Blocking."""
    from wa_ray.storage.redis_client import connect_sync

    client = connect_sync(url)
    started = time.monotonic()
    groups: dict[str, list[int]] = {}  # pattern -> [keys, bytes, keys without a TTL]
    scanned = 0
    try:
        batch: list[str] = []

        def flush() -> None:
            pipe = client.pipeline(transaction=False)
            for k in batch:
                pipe.memory_usage(k, samples=0)
                pipe.ttl(k)
            got = pipe.execute(raise_on_error=False)
            for k, used, ttl in zip(batch, got[0::2], got[1::2], strict=True):
                g = groups.setdefault(key_pattern(k), [0, 0, 0])
                g[0] += 1
                g[1] += used if isinstance(used, int) else 0
                g[2] += 1 if isinstance(ttl, int) and ttl == -1 else 0  # kept until deleted
            batch.clear()

        for key in client.scan_iter(count=1000):
            batch.append(key)
            scanned += 1
            if len(batch) >= 1000:
                flush()
            if scanned >= max_keys:
                break
        if batch:
            flush()
    finally:
        client.close()
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])
    return {"keys_scanned": scanned, "complete": scanned < max_keys, "took_s": round(time.monotonic() - started, 2),
            "by_pattern": {p: {"keys": n, "mb": round(b / 1e6, 2), "without_ttl": forever}
                           for p, (n, b, forever) in ranked[:top]},
            "other_patterns": max(0, len(ranked) - top)}


# ------------------------------------------------------------------ the sampler
@dataclass
class Sampler:
    redis_url: str
    receiver_pid: int | None
    cpu: CpuAccount
    bench_pid: int = field(default_factory=os.getpid)
    actors: ActorProbe = field(default_factory=ActorProbe)
    _cpu_before: CpuSnapshot | None = None

    async def take(self, t_s: float, metrics: Any) -> Sample:
        """`metrics`: an async callable returning GET /metrics's text (None if it could not be read)."""
        started = time.monotonic()
        wall = time.time()
        procs_job = asyncio.to_thread(scan_processes, self.bench_pid, self.receiver_pid)
        redis_job = asyncio.to_thread(redis_sample, self.redis_url)
        procs, redis, actors, text = await asyncio.gather(
            procs_job, redis_job, self.actors.tasks_by_pid(), metrics(), return_exceptions=True)
        errs: list[str] = []
        for name, got in (("processes", procs), ("redis", redis), ("actors", actors), ("metrics", text)):
            if isinstance(got, BaseException):
                errs.append(f"{name}: {type(got).__name__}: {got}"[:200])
        procs = procs if isinstance(procs, list) else []
        tasks: dict[int, int] = {}
        if isinstance(actors, tuple):
            tasks, probe_errors = actors
            errs += probe_errors
        procs = [ProcSample(p.pid, p.component, p.rss_kb, p.pss_kb, p.uss_kb, p.fds, tasks.get(p.pid))
                 for p in procs]
        snap = await asyncio.to_thread(self.cpu.snapshot)
        cpu: dict[str, Any] = {}
        if self._cpu_before is not None:
            diff = CpuAccount.diff(self._cpu_before, snap)
            by: dict[str, float] = diff["by_component_cores"]  # type: ignore[assignment]
            cpu = {"service_cores": round(sum(v for k, v in by.items()
                                              if k not in ("bench-process", "bench-webhook-receiver")), 3),
                   "machine_busy_cores": diff["machine_busy_cores"], "others_busy_cores": diff["others_busy_cores"]}
        self._cpu_before = snap
        return Sample(t_s=round(t_s, 1), wall=wall, took_s=round(time.monotonic() - started, 2),
                      components=by_component(procs), redis=redis if isinstance(redis, dict) else {},
                      ingress_metrics_tasks=ingress_tasks(text) if isinstance(text, str) else {},
                      cpu=cpu, errors=errs, procs=procs)
