"""`WA_INGRESS=haproxy`: Ray Serve's HAProxy direct ingress in place of Serve's Python proxy.

Serve's default ingress is a ProxyActor per node that receives every request in Python and relays it to the
Ingress replica as a Ray actor call. With Ray 2.60's direct ingress (`RAY_SERVE_ENABLE_DIRECT_INGRESS=1`,
`RAY_SERVE_ENABLE_HA_PROXY=1`) the replica serves HTTP itself (uvicorn on a port of 30000-31000) and Debian's
haproxy, run by Ray's HAProxyManager actor, listens on WA_HTTP_HOST:WA_HTTP_PORT. Serve itself is given
127.0.0.1 (`serve_http_options`): the replica and Serve's fallback proxy speak plain HTTP, on loopback only.
What it saves is measured in bench/results (README, "Ingress").

Ray reads these switches from its processes' environment, so the service sets them before it starts its own
Ray (`Service`, which restores the driver's environment when it stops); a cluster started elsewhere
(WA_RAY_ADDRESS) would need them on every node before `ray start` and is refused. The HAProxy binary Ray
starts is a launcher written here that passes Ray's configuration through wa_ray/entry/haproxy_config.py.
Its files (launcher, Ray's config, HAProxy's admin socket) live in a 0700 directory of their own under /tmp
(a Unix socket's path must stay short), removed at stop.
"""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from wa_ray.config import Settings
from wa_ray.storage.embedded import free_port


class IngressUnavailable(ValueError):
    """WA_INGRESS=haproxy cannot run as configured; the message says what to change."""


@dataclass
class HAProxyIngress:
    """The files and environment of one service's HAProxy ingress; `close()` undoes both."""

    workdir: Path
    environment: dict[str, str]
    _saved: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def prepare(cls, settings: Settings) -> HAProxyIngress:
        if settings.ray_address:
            raise IngressUnavailable(
                "WA_INGRESS=haproxy starts Ray with Serve's direct-ingress switches in its environment; a cluster "
                "started elsewhere (WA_RAY_ADDRESS) needs them on every node: see README, 'Ingress'")
        haproxy = shutil.which(settings.haproxy_binary)
        if not haproxy:
            raise IngressUnavailable(f"WA_INGRESS=haproxy: no haproxy binary at {settings.haproxy_binary!r} "
                                     "(Debian: apt-get install haproxy; or set WA_HAPROXY_BINARY)")
        workdir = Path(tempfile.mkdtemp(prefix="wa-haproxy-", dir="/tmp" if Path("/tmp").is_dir() else None))
        launcher = [sys.executable, "-m", "wa_ray.entry.haproxy_config", "--haproxy", haproxy,
                    "--frontend-host", settings.http_host]
        if settings.tls_cert and settings.tls_key:
            launcher += ["--tls-pem", str(_tls_pair(workdir, settings.tls_cert, settings.tls_key))]
        script = workdir / "haproxy"
        script.write_text(f"#!/bin/sh\nexec {shlex.join(launcher)} -- \"$@\"\n")
        script.chmod(0o700)
        base = workdir / "ray"
        environment = {
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_BINARY_PATH": str(script),
            "RAY_SERVE_HAPROXY_NBTHREAD": str(settings.haproxy_threads),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
            # a replica being replaced keeps serving this long after HAProxy is told (its health checks every
            # 250 ms once failing, a reload coalesced over 0.1 s: one node's HAProxy knows within a second);
            # Ray's 30 s default made every stop of the service wait half a minute
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
            # the replica's uvicorn and our app on one event loop, not a thread hop each way per request (Ray's
            # throughput profile sets it too; its worth: bench/results/experiments/ingress-option-20261207)
            "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
            # per-request metric lines carry the request line (an SSE URL carries its token): off
            "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
            # HAProxy's own listeners, on 127.0.0.1 (haproxy_config.harden): free ports, so two services on
            # one machine do not collide on Ray's fixed defaults
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),  # Serve's proxy, HAProxy's backup server
        }
        return cls(workdir=workdir, environment=environment)

    def wait_until_routing(self, timeout_s: float = 30.0) -> None:
        """Until HAProxy has an Ingress replica UP. Serve reports the app running a moment before HAProxy's
        reload takes the replica in (HAProxy answers 404 meanwhile), and the service says it is up only once
        a call would be served. Asked on HAProxy's admin socket, which needs no TLS client of our own."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(_replica_up(path) for path in (self.workdir / "ray").glob("*/admin.sock")):
                return
            time.sleep(0.05)
        raise IngressUnavailable(f"HAProxy routed to no Ingress replica within {timeout_s:.0f}s")

    def apply(self) -> None:
        """Into this process's environment, which the Ray it starts next (and every worker) inherits."""
        for name, value in self.environment.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def close(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def serve_http_options(settings: Settings) -> dict[str, object]:
    """Serve's http_options in this mode: loopback, no TLS (HAProxy holds WA_HTTP_HOST and the certificate)."""
    return {"host": "127.0.0.1", "port": settings.http_port}


def _replica_up(admin_socket: Path) -> bool:
    """Whether `show stat` lists a Serve replica server UP (Ray names them SERVE_REPLICA_...)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(admin_socket))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    except OSError:
        return False  # not listening yet, or a reload swapping the process behind it
    rows = csv.DictReader(data.decode(errors="replace").removeprefix("# ").splitlines())
    return any(row.get("svname", "").startswith("SERVE_REPLICA") and row.get("status") == "UP" for row in rows)


def _tls_pair(workdir: Path, cert: Path, key: Path) -> Path:
    """HAProxy's `crt` names one file and finds the key beside it as `<crt>.key`: two links to the operator's
    files, so the key is not copied."""
    pem = workdir / "server.pem"
    pem.symlink_to(cert.resolve())
    pem.with_name("server.pem.key").symlink_to(key.resolve())
    return pem
