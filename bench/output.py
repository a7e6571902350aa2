"""What the density, qr, recovery, api and crypto benches share: the result envelope, the files, the progress bar.

Every result is one JSON document:
`{kind, created_at, command, machine, load: {start, end}, goals: [...], results, notes, cleanup}`
written as `<name>-<stamp>.json` + `<name>-<stamp>.md` and as `<name>-latest.json/.md` (+ `-latest.png`).
`goals` rows are `{goal, target, measured, met}` so a reader (or a test) sees pass/fail without the prose.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wa_ray.bench.report import now_iso, percentile, stamp, to_jsonable

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    return "python -m wa_ray.bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(xs: Sequence[float]) -> float | None:
    return round(percentile(sorted(xs), 50), 2) if xs else None


def pct(xs: Sequence[float], q: float) -> float | None:
    return round(percentile(sorted(xs), q), 2) if xs else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


@dataclass
class Envelope:
    kind: str
    command: str = field(default_factory=command_line)
    created_at: str = field(default_factory=now_iso)
    machine: dict[str, Any] = field(default_factory=dict)
    load_start: list[float] = field(default_factory=loadavg)
    load_end: list[float] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cleanup: dict[str, Any] | None = None

    def goal(self, goal: str, target: str, measured: Any, met: bool | None) -> None:
        self.goals.append({"goal": goal, "target": target, "measured": measured, "met": met})

    def finish(self) -> None:
        self.load_end = loadavg()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "created_at": self.created_at, "command": self.command,
                "machine": to_jsonable(self.machine),
                "load": {"loadavg_1_5_15_at_start": self.load_start, "loadavg_1_5_15_at_end": self.load_end,
                         "nproc": os.cpu_count()},
                "goals": self.goals, "results": to_jsonable(self.results), "notes": self.notes,
                "cleanup": to_jsonable(self.cleanup)}


def write(env: Envelope, body_md: str, out_dir: Path, plot: Callable[[Path], bool] | None = None) -> dict[str, Path]:
    """`<kind>-<stamp>.json/.md` and `<kind>-latest.json/.md` (+ `<kind>-latest.png` when `plot` draws one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not env.load_end:
        env.finish()
    data = env.to_dict()
    md = markdown(env, body_md)
    when = stamp()
    paths = {"json": out_dir / f"{env.kind}-{when}.json", "md_stamped": out_dir / f"{env.kind}-{when}.md",
             "latest_json": out_dir / f"{env.kind}-latest.json", "md": out_dir / f"{env.kind}-latest.md"}
    text = json.dumps(data, indent=2) + "\n"
    paths["json"].write_text(text)
    paths["latest_json"].write_text(text)
    paths["md_stamped"].write_text(md)
    paths["md"].write_text(md)
    if plot is not None:
        png = out_dir / f"{env.kind}-latest.png"
        with contextlib.suppress(ImportError):
            if plot(png):
                paths["png"] = png
    return paths


def markdown(env: Envelope, body_md: str) -> str:
    lines = [f"# wa-ray bench: {env.kind}", "", f"Run {env.created_at}: `{env.command}`", ""]
    if env.goals:
        lines += ["## Goals", "", "| goal | target | measured | met |", "| --- | --- | --- | --- |"]
        for g in env.goals:
            met = "-" if g["met"] is None else ("yes" if g["met"] else "**no**")
            lines.append(f"| {g['goal']} | {g['target']} | {g['measured']} | {met} |")
        lines.append("")
    lines += [body_md.rstrip(), ""]
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in to_jsonable(env.machine).items()]
    lines += [f"| load average (1/5/15 min) at start | {env.load_start} |",
              f"| load average (1/5/15 min) at end | {env.load_end} |", ""]
    if env.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in env.notes] + [""]
    if env.cleanup:
        lines += ["## Cleanup", "", f"`{json.dumps(to_jsonable(env.cleanup))}`", ""]
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.0f}" if abs(x) >= 100 else (f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}")
    return str(x)


@contextlib.contextmanager
def progress(console: Console) -> Iterator[Progress]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console, refresh_per_second=4) as bar:
        yield bar


def machine_without_service() -> dict[str, Any]:
    from wa_ray.bench.machine import describe_machine
    from wa_ray.runtime import default_chromium

    return to_jsonable(describe_machine(default_chromium()))
