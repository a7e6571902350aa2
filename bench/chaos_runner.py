"""Run the chaos scenario (tests/chaos/scenario.py) in a process of its own, as the test and `bench chaos` do.

The scenario is a test of the whole service and lives with the tests; this runner only starts it as a
process (`python -m tests.chaos.scenario` from the checkout), so the bench imports nothing of `tests/`
and `bench chaos` needs a source checkout, not an installed wheel.

One Ray and one Service per process, with a Ray temp dir of its own, so a run never joins another run's
cluster; on a timeout the scenario is sent SIGTERM (it stops its Ray, Chromium and Redis), then killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]  # the checkout: bench/ sits at its top
ALL_FAULTS = ("actor", "chromium", "supervisor", "dispatcher", "redis", "host")


def fault_kinds(faults_csv: str, hosting: str) -> tuple[str, ...]:
    """The fault kinds a run injects: the listed ones we know, less `actor` when there is no session actor."""
    return tuple(k for k in faults_csv.split(",") if k in ALL_FAULTS and not (k == "actor" and hosting == "host"))


@dataclass
class ScenarioRun:
    result: dict[str, Any] | None  # the scenario's RESULT line; None when it failed or timed out
    log: str  # its stdout without the RESULT line
    error: str  # why there is no result: the tail of its output
    wall_s: float


def run_scenario(scale: float, timeout_s: float, seed: int | None = None, env: dict[str, str] | None = None,
                 keep_logs: bool = False) -> ScenarioRun:
    child_env = {**os.environ, **(env or {})}
    ray_tmp = tempfile.mkdtemp(prefix="chaos-ray-", dir="/tmp")
    child_env["RAY_TMPDIR"] = ray_tmp
    child_env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "tests.chaos.scenario", "--scale", str(scale)]
    if seed is not None:
        args += ["--seed", str(seed)]
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=child_env, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    finally:
        if keep_logs:  # Ray's worker logs (BrowserHost, senders) for a post-mortem
            sys.stdout.write(f"\nRay logs kept in {ray_tmp}\n")
        else:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    wall_s = round(time.monotonic() - started, 1)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    text = "\n".join(line for line in out.splitlines() if not line.startswith("RESULT "))
    if timed_out:
        return ScenarioRun(None, text, f"timed out after {timeout_s}s:\n{out[-4000:]}\n{err[-4000:]}", wall_s)
    if proc.returncode != 0 or not lines:
        return ScenarioRun(None, text, f"failed (rc {proc.returncode}):\n{out[-4000:]}\n{err[-6000:]}", wall_s)
    result = orjson.loads(lines[-1][len("RESULT "):])
    result["wall_s"] = wall_s
    return ScenarioRun(result, text, "", wall_s)
