"""Memory of a process tree from /proc/<pid>/smaps_rollup: PSS (the headline), USS and RSS.

PSS divides every shared page by the number of processes mapping it, so the
PSS of a set of processes adds up to what the set really costs. Caveat on a
shared machine: file-backed pages (libchromium, libpython, Ray's .so) are also
shared with *other people's* processes mapping the same files, which lowers
our PSS a little while they run; `pss_anon` (+ shmem) does not move with them
and USS (private pages only) is a lower bound, RSS an upper one. All three
are recorded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

FIELDS = {"Rss": "rss", "Pss": "pss", "Pss_Anon": "pss_anon", "Pss_File": "pss_file", "Pss_Shmem": "pss_shmem",
          "Private_Clean": "private_clean", "Private_Dirty": "private_dirty", "Swap": "swap"}


@dataclass
class Mem:
    """kB, summed over processes."""

    rss: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    swap: int = 0
    processes: int = 0

    @property
    def uss(self) -> int:
        return self.private_clean + self.private_dirty

    def __add__(self, other: Mem) -> Mem:
        return Mem(**{k: getattr(self, k) + getattr(other, k) for k in (*FIELDS.values(), "processes")})

    def mb(self) -> dict[str, float]:
        """The figures in MB (10^6 bytes; /proc's "kB" are KiB)."""
        return {"pss_mb": to_mb(self.pss), "pss_anon_shmem_mb": to_mb(self.pss_anon + self.pss_shmem),
                "uss_mb": to_mb(self.uss), "rss_mb": to_mb(self.rss), "processes": self.processes}


def to_mb(kib: float) -> float:
    return round(kib * 1024 / 1e6, 1)


def rollup(pid: int) -> Mem | None:
    """One process's smaps_rollup, or None if it is gone (or not ours to read)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            text = fh.read()
    except OSError:
        return None
    mem = Mem(processes=1)
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        name = FIELDS.get(key)
        if name and rest.strip().endswith("kB"):
            setattr(mem, name, int(rest.split()[0]))
    return mem


def total(pids: Iterable[int]) -> Mem:
    out = Mem()
    for pid in pids:
        m = rollup(pid)
        if m is not None:
            out = out + m
    return out


# ------------------------------------------------------------------ the process tree
@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]

    @property
    def title(self) -> str:
        return " ".join(self.argv)


def process_table() -> dict[int, Proc]:
    """Every live (non-zombie) process: pid -> (ppid, argv)."""
    out: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
            if fields[0] == "Z":
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = tuple(a.decode(errors="replace") for a in fh.read().split(b"\0") if a)
        except (OSError, IndexError):
            continue
        out[pid] = Proc(pid, int(fields[1]), argv)
    return out


def descendants(root: int, table: dict[int, Proc] | None = None) -> set[int]:
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def is_chromium(proc: Proc) -> bool:
    head = proc.argv[0] if proc.argv else ""
    return head.split(" ", 1)[0].endswith(("/chromium", "/chrome", "chrome-headless-shell")) or \
        head.startswith(("/usr/lib/chromium/chromium", "chromium"))


def is_node(proc: Proc) -> bool:
    head = proc.argv[0] if proc.argv else ""
    return os.path.basename(head.split(" ", 1)[0]) in ("node", "nodejs")


@dataclass
class Breakdown:
    """Named groups of pids and what each costs."""

    groups: dict[str, list[int]] = field(default_factory=dict)

    def add(self, group: str, pid: int) -> None:
        self.groups.setdefault(group, []).append(pid)

    def measure(self) -> dict[str, Mem]:
        return {name: total(pids) for name, pids in self.groups.items()}


def chromium_kinds(pids: Iterable[int], table: dict[int, Proc]) -> dict[str, int]:
    """How many Chromium processes of each --type (browser, renderer, zygote, gpu-process, utility...)."""
    out: dict[str, int] = {}
    for pid in pids:
        proc = table.get(pid)
        if proc is None or not is_chromium(proc):
            continue
        kind = "browser"
        for arg in " ".join(proc.argv).split():
            if arg.startswith("--type="):
                kind = arg.removeprefix("--type=")
                break
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


def wait_gone(pids: Iterable[int], timeout_s: float = 20.0) -> list[int]:
    """Wait for processes to exit; the ones still alive after the timeout are returned (not killed)."""
    import time

    pending = set(pids)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if _alive(p)}
        if pending:
            time.sleep(0.2)
    return sorted(pending)


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[0] != "Z"
    return False
