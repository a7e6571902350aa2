"""Process accounting for leak tests: only Chromium processes descending from one of our hosts,
so other Chromiums on the machine never skew a count."""

from __future__ import annotations

import os


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(") ", 1)[1].split()
                if fields[0] != "Z":
                    out[int(entry)] = int(fields[1])
            except (OSError, IndexError):
                continue
    return out


def descendants(root: int) -> set[int]:
    parents = _parents()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a for a in fh.read().split(b"\0") if a]
    except OSError:
        return []
    # Chromium's children rewrite their title: the whole command line sits in argv[0]
    return argv[0].split(b" ") + argv[1:] if argv and b" " in argv[0] else argv


def chromium_under(root: int, kind: str | None = None) -> list[int]:
    """Live Chromium processes below `root`; `kind` picks a --type= (e.g. "renderer"), "" the browser itself."""
    out = []
    for pid in descendants(root):
        argv = _argv(pid)
        if not argv or not argv[0].endswith(b"chromium"):
            continue
        types = [a for a in argv if a.startswith(b"--type=")]
        if kind is None or (kind == "" and not types) or (kind and types == [f"--type={kind}".encode()]):
            out.append(pid)
    return sorted(out)
