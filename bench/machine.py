"""What the bench ran on, and where the CPU went while it ran.

`describe_machine` is read once per run (cores, RAM, CPU model, versions).
`CpuAccount` snapshots the CPU time of this process and of every process it
started (Ray, the Serve proxy and replica, the BrowserHost and its Chromium,
Redis, the webhook receiver), and of the processes it is told to watch (a Redis
on this machine that the bench did not start), so a report can say which part
was busy, and how much of the machine other people's processes were using at
the same time.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MachineInfo:
    nproc: int
    cpus_usable: int
    cpu_model: str
    ram_total_gib: float
    ram_available_gib: float
    loadavg_1m_at_start: float
    kernel: str
    python: str
    ray: str
    playwright: str
    chromium: str
    redis_server: str
    wa_ray_commit: str
    wa_ray_dirty: bool
    session_hosting: str = "n/a"
    ingress: str = "n/a"  # WA_INGRESS: what listened on the HTTP port (serve: Serve's proxy; haproxy)
    redis: str = "n/a"  # which Redis the service used: embedded, one server, a cluster of N primaries (no password)


def describe_machine(chromium_path: str | None, redis_version: str = "unknown",
                     session_hosting: str = "n/a", redis: str = "n/a", ingress: str = "n/a") -> MachineInfo:
    mem = psutil.virtual_memory()
    commit, dirty = _git_state()
    return MachineInfo(
        nproc=os.cpu_count() or 0,
        cpus_usable=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        ram_total_gib=round(mem.total / 2**30, 2),
        ram_available_gib=round(mem.available / 2**30, 2),
        loadavg_1m_at_start=round(os.getloadavg()[0], 2),
        kernel=platform.release(),
        python=platform.python_version(),
        ray=_dist_version("ray"),
        playwright=_dist_version("playwright"),
        chromium=_chromium_version(chromium_path),
        redis_server=redis_version,
        wa_ray_commit=commit,
        wa_ray_dirty=dirty,
        session_hosting=session_hosting,
        ingress=ingress,
        redis=redis,
    )


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _chromium_version(path: str | None) -> str:
    if not path:
        return "playwright bundled (version not probed)"
    try:
        out = subprocess.run([path, "--version"], check=False, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"


def _git_state() -> tuple[str, bool]:
    """The commit the code under test came from; WA_RAY_COMMIT names it for a tree exported without .git."""
    if os.environ.get("WA_RAY_COMMIT"):
        return os.environ["WA_RAY_COMMIT"], False
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], check=False, cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return commit or "unknown", dirty
    except (OSError, subprocess.TimeoutExpired):
        return "unknown", False


# ------------------------------------------------------------------ CPU accounting
_RAY_TITLE = re.compile(r"^ray::([A-Za-z_][\w]*)(?::([\w-]+):([\w-]+))?")


def component_of(proc: psutil.Process) -> str:
    """A stable label for one of our processes: 'ray::BrowserHost', 'chromium', 'redis-server', ..."""
    try:
        cmd = proc.cmdline()
        name = proc.name()
    except psutil.ZombieProcess:
        try:
            return f"{proc.name()} (exited)"
        except psutil.Error:
            return "gone"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    head = cmd[0] if cmd else name
    m = _RAY_TITLE.match(head)
    if m:
        if m.group(1).startswith("ServeReplica") or head.startswith("ray::ServeReplica"):
            # ray::ServeReplica:<app>:<deployment>; every replica used to be labelled Ingress
            return f"ray::ServeReplica({m.group(3) or 'Ingress'})"
        return f"ray::{m.group(1)}"
    joined = " ".join(cmd)
    if "chromium" in head or "chrome" in name:
        return "chromium"
    if "playwright" in joined and ("node" in name or "driver" in joined):
        return "playwright-driver"
    if any(server in name or server in head for server in ("redis-server", "valkey-server")):
        return "redis-server"
    if "raylet" in name or "raylet" in head:
        return "raylet"
    if name == "haproxy":  # WA_INGRESS=haproxy: Ray's HAProxyManager runs it
        return "haproxy"
    if "gcs_server" in name or "gcs_server" in head:
        return "gcs_server"
    if "python" in name:
        return "python(other ray helper)"
    return name


@dataclass
class CpuSnapshot:
    wall: float
    system_busy: float  # seconds of non-idle CPU on the whole machine
    per_pid: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (component, cpu seconds)


class CpuAccount:
    """CPU seconds by component between two snapshots (ours) and for the whole machine (everyone)."""

    def __init__(self, root_pid: int | None = None) -> None:
        self._root = psutil.Process(root_pid or os.getpid())
        self._labels: dict[tuple[int, float], str] = {}
        self._named: dict[int, str] = {}
        self._watched: list[psutil.Process] = []

    def name(self, pid: int, label: str) -> None:
        """Label a child whose command line says nothing (a multiprocessing child)."""
        self._named[pid] = label

    def watch(self, pid: int) -> None:
        """Count a process that is not our descendant as ours (e.g. each redis-server of an external cluster)."""
        try:
            self._watched.append(psutil.Process(pid))
        except psutil.Error:
            pass

    def snapshot(self) -> CpuSnapshot:
        import time

        times = psutil.cpu_times()
        busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
        snap = CpuSnapshot(wall=time.monotonic(), system_busy=busy)
        for proc in self._processes():
            try:
                key = (proc.pid, proc.create_time())
                if key not in self._labels or self._labels[key] in ("python(other ray helper)", "gone"):
                    self._labels[key] = ("bench-process" if proc.pid == self._root.pid
                                         else self._named.get(proc.pid) or component_of(proc))
                t = proc.cpu_times()
                snap.per_pid[proc.pid] = (self._labels[key], t.user + t.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return snap

    def _processes(self) -> list[psutil.Process]:
        """This process, its descendants, and the watched processes still running (a reused pid is not)."""
        procs = [self._root, *self._children()]
        seen = {p.pid for p in procs}
        return procs + [p for p in self._watched if p.pid not in seen and p.is_running()]

    def _children(self) -> list[psutil.Process]:
        try:
            return self._root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []

    @staticmethod
    def diff(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
        wall = max(after.wall - before.wall, 1e-9)
        by: dict[str, float] = {}
        for pid, (label, cpu) in after.per_pid.items():
            start = before.per_pid.get(pid, (label, 0.0))[1]
            by[label] = by.get(label, 0.0) + max(cpu - start, 0.0)
        ours = sum(by.values())
        machine = max(after.system_busy - before.system_busy, 0.0)
        return {
            "wall_s": round(wall, 2),
            "machine_busy_cores": round(machine / wall, 2),
            "ours_busy_cores": round(ours / wall, 2),
            "others_busy_cores": round(max(machine - ours, 0.0) / wall, 2),
            "by_component_cores": {k: round(v / wall, 3) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
        }
