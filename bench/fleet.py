"""Child processes that hold the baselines' browsers (bench/pw_fleet.py, bench/wwebjs_fleet.js).

A `Fleet` talks JSON lines over the child's stdin/stdout, knows the child's
whole process tree (for PSS), and on `stop()` asks the child to quit, waits
for every process of the tree to exit, and ends the stragglers by pid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wa_ray.bench.memory import descendants, process_table, wait_gone

log = logging.getLogger("bench")

WWEBJS_VERSION = "1.34.7"
WWEBJS_SCRIPT = Path(__file__).resolve().parent / "wwebjs_fleet.js"


class FleetError(RuntimeError):
    pass


@dataclass
class Fleet:
    argv: list[str]
    env: dict[str, str]
    name: str
    proc: subprocess.Popen[str] | None = None
    _lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    _stderr: list[str] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)

    def start(self, timeout_s: float = 60.0) -> Fleet:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.env, bufsize=1)
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()
        self.wait_for("started", timeout_s)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            if is_stdout and line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    self._lines.put(json.loads(line))
                    continue
            self._stderr.append(line)
            del self._stderr[:-200]

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, ev: str, timeout_s: float, on_event: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FleetError(f"{self.name}: no {ev!r} in {timeout_s:g}s; stderr tail: {self.stderr_tail()}")
            try:
                msg = self._lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None:
                    raise FleetError(f"{self.name} exited with {self.proc.returncode}; stderr: {self.stderr_tail()}")
                continue
            if msg.get("ev") == ev:
                return msg
            if msg.get("ev") == "error":
                raise FleetError(f"{self.name}: {msg.get('message')}")
            if on_event is not None:
                on_event(msg)

    def stderr_tail(self) -> str:
        return " | ".join(self._stderr[-8:])[-1500:]

    def tree(self) -> set[int]:
        """The child and everything under it, remembered so stop() can check they all ended."""
        pids = {self.pid} | descendants(self.pid, process_table())
        self._seen |= pids
        return pids

    def stop(self, timeout_s: float = 60.0) -> list[str]:
        """Quit politely, then make sure the whole tree is gone; returns what had to be killed."""
        if self.proc is None:
            return []
        with contextlib.suppress(Exception):
            self.tree()
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.send({"cmd": "quit", "quit": True})
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
        killed = []
        for pid in wait_gone(self._seen, timeout_s=15):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.append(str(pid))
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        return killed


def wwebjs_dir() -> Path:
    """whatsapp-web.js installed once per machine, where tests/simulator/test_wa_web.py puts it.

    PUPPETEER_SKIP_DOWNLOAD: we bring Chromium (the same binary wa-ray drives).
    """
    if not (shutil.which("node") and shutil.which("npm")):
        raise FleetError("node and npm are needed for the whatsapp-web.js baseline")
    root = Path(os.environ.get("WA_RAY_WWEBJS_DIR", Path.home() / ".cache" / "wa-ray" / f"wwebjs-{WWEBJS_VERSION}"))
    if (root / "node_modules" / "whatsapp-web.js" / "package.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root),
                    f"whatsapp-web.js@{WWEBJS_VERSION}"], env=env, check=True, capture_output=True, timeout=600)
    return root


def wwebjs_fleet(sim_url: str, auth_dir: Path, chromium: str, args: tuple[str, ...]) -> Fleet:
    root = wwebjs_dir()
    env = {**os.environ, "SIM": sim_url.rstrip("/"), "AUTH_DIR": str(auth_dir), "CHROMIUM": chromium,
           "CHROMIUM_ARGS": ",".join(args), "NODE_PATH": str(root / "node_modules")}
    return Fleet(["node", str(WWEBJS_SCRIPT)], env, "whatsapp-web.js")


def playwright_fleet(sim_url: str, chromium: str | None) -> Fleet:
    import sys

    argv = [sys.executable, "-m", "wa_ray.bench.pw_fleet", "--sim", sim_url]
    if chromium:
        argv += ["--chromium", chromium]
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return Fleet(argv, env, "playwright-per-session")
