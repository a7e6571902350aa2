"""Optional py-spy sampling of the service's hot processes while a step runs (`--profile`).

Each target (the Serve proxy and replica, the WebhookDispatcher, the
BrowserHost, the bench itself) is sampled with `py-spy record --format raw
--gil` (only stacks holding the GIL, i.e. Python burning CPU, not threads
parked in native waits) for the step's sending phase; the raw stacks are kept next to the results and
summarised here as self time by package and by function, so a report can say
where the CPU of a message goes. Sampling costs CPU too: profiled figures are
for finding the bottleneck, not for quoting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from wa_ray.bench.machine import component_of

TARGETS = ("ray::ProxyActor", "ray::ServeReplica(Ingress)", "ray::WebhookDispatcher", "ray::BrowserHost")


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def find_targets() -> dict[str, int]:
    targets: dict[str, int] = {"bench-process": os.getpid()}
    for proc in psutil.Process().children(recursive=True):
        label = component_of(proc)
        if label in TARGETS and label not in targets:
            targets[label] = proc.pid
    return targets


@dataclass(frozen=True)
class ProfileSummary:
    samples: int
    self_by_package: dict[str, float]  # share of samples, 0..1
    self_by_function: dict[str, float]
    inclusive_project: dict[str, float]  # wa-ray's own functions, inclusive
    raw_file: str


@dataclass
class StepProfiler:
    out_dir: Path
    label: str
    duration_s: float
    rate_hz: int = 50
    _procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in find_targets().items():
            out = self.out_dir / f"{self.label}-{_slug(name)}.txt"
            cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(self.duration_s))),
                   "--rate", str(self.rate_hz), "--format", "raw", "--nolineno", "--gil", "--nonblocking", "--output",
                   str(out)]
            self._procs[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)

    def finish(self, timeout_s: float = 30.0) -> dict[str, ProfileSummary]:
        out: dict[str, ProfileSummary] = {}
        for name, (proc, path) in self._procs.items():
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if path.exists():
                out[name] = summarise(path)
        return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()


def _frame_parts(frame: str) -> tuple[str, str]:
    """'send_message (serve_app/messages_api.py)' -> ('send_message', 'serve_app/messages_api.py')."""
    func, _, rest = frame.partition(" (")
    return func.strip(), rest.rstrip(")").strip()


def _package(path: str) -> str:
    path = path.split(":")[0]
    if path.startswith("<"):
        return path
    parts = Path(path).parts
    if not parts:
        return path
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    elif "python3.11" in parts or "lib" in parts:
        return "stdlib:" + parts[-1]
    return parts[0].removesuffix(".py")


PROJECT = ("actors/", "serve_app/", "storage/", "sessions/", "supervisors/", "wa_ray/", "bench/", "simulator/")


def summarise(path: Path, top: int = 12) -> ProfileSummary:
    self_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        func, file = _frame_parts(frames[-1])
        self_pkg[_package(file)] += n
        self_fn[f"{func} ({file})"] += n
        seen: set[str] = set()
        for frame in frames:
            f, fl = _frame_parts(frame)
            if fl.startswith(PROJECT) and (key := f"{f} ({fl})") not in seen:
                seen.add(key)
                incl[key] += n

    def share(c: Counter[str]) -> dict[str, float]:
        return {k: round(v / total, 3) for k, v in c.most_common(top)} if total else {}

    return ProfileSummary(total, share(self_pkg), share(self_fn), share(incl), str(path))
