"""`--hosting actor,host` for density, qr and throughput(-peak): both hosting modes in one run, side by side.

Each mode runs as a process of its own (`WA_SESSION_HOSTING=<mode>`; one Ray cluster per process, the way
the benches always ran) into `<out>/hosting-<mode>/`, one after the other on the same machine, and the goals
of each land in one table: `<kind>-hosting-<stamp>.json/.md` and `<kind>-hosting-latest.json/.md` in `<out>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from wa_ray.bench.output import DEFAULT_OUT
from wa_ray.bench.report import now_iso, stamp

COMMANDS = frozenset({"density", "qr", "throughput", "throughput-peak"})
MODES = ("actor", "host")


def split_hosting(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """argv without `--hosting X` / `--hosting=X`, and the modes it named (None: not given). Only for the
    commands above (chaos has a `--hosting` of its own)."""
    if not argv or argv[0] not in COMMANDS:
        return argv, None
    rest: list[str] = []
    modes: list[str] | None = None
    it = iter(argv)
    for arg in it:
        if arg == "--hosting":
            value = next(it, "")
        elif arg.startswith("--hosting="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
            continue
        modes = [m.strip() for m in value.split(",") if m.strip()]
        if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
            raise SystemExit(f"--hosting: a comma-separated choice of {','.join(MODES)}, got {value!r}")
    return rest, modes


def _out_dir(argv: list[str]) -> tuple[list[str], Path]:
    rest, out = [], DEFAULT_OUT
    it = iter(argv)
    for arg in it:
        if arg == "--out":
            out = Path(next(it, str(DEFAULT_OUT)))
        elif arg.startswith("--out="):
            out = Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, out


def side_by_side(kind: str, envelopes: dict[str, dict[str, Any]]) -> str:
    """The Markdown: one row per goal, one column per mode (measured, and whether it met the target)."""
    modes = list(envelopes)
    goals: dict[str, dict[str, Any]] = {}
    for mode, env in envelopes.items():
        # throughput reports carry their peak instead of goals
        rows = env.get("goals") or [{"goal": f"peak: {k}", "measured": v, "met": None}
                                    for k, v in (env.get("peak") or {}).items()]
        for g in rows:
            row = goals.setdefault(g["goal"], {"target": g.get("target", "")})
            met = {True: "met", False: "NOT met"}.get(g.get("met"), "n/a")
            row[mode] = f"{g.get('measured')} ({met})"
    lines = [f"# {kind}: hosting modes side by side", "",
             "| goal | target | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for goal, row in goals.items():
        lines.append(f"| {goal} | {row['target']} | " + " | ".join(str(row.get(m, "-")) for m in modes) + " |")
    lines += ["", "Each mode's own report: " + ", ".join(f"`hosting-{m}/{kind}-latest.md`" for m in modes), ""]
    return "\n".join(lines)


def run_modes(argv: list[str], modes: list[str]) -> int:
    """Run `python -m wa_ray.bench <argv>` once per mode and write the combined report; the exit code is the
    worst of the runs."""
    argv, out = _out_dir(argv)
    kind = argv[0]
    envelopes: dict[str, dict[str, Any]] = {}
    worst = 0
    for mode in modes:
        sub_out = out / f"hosting-{mode}"
        sub_out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "WA_SESSION_HOSTING": mode}
        print(f"== {kind} with {mode} hosting -> {sub_out}", flush=True)
        rc = subprocess.run([sys.executable, "-m", "wa_ray.bench", *argv, "--out", str(sub_out)], env=env).returncode
        worst = max(worst, rc)
        latest = sub_out / f"{kind}-latest.json"
        if latest.exists():
            envelopes[mode] = json.loads(latest.read_text())
    combined = {"kind": f"{kind}-hosting", "created_at": now_iso(),
                "command": "python -m wa_ray.bench " + " ".join([*argv, "--hosting", ",".join(modes)]),
                "modes": envelopes}
    md = side_by_side(kind, envelopes)
    when = stamp()
    for name in (f"{kind}-hosting-{when}", f"{kind}-hosting-latest"):
        (out / f"{name}.json").write_text(json.dumps(combined, indent=2) + "\n")
        (out / f"{name}.md").write_text(md)
    print(md)
    print(f"md: {out / f'{kind}-hosting-latest.md'}")
    return worst
