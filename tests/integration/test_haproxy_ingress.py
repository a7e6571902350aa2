"""`WA_INGRESS=haproxy`: `wa-ray up` with Ray Serve's HAProxy direct ingress, TLS on, as an operator runs it.

What it must keep from the default ingress, each checked on the running service:
- HTTPS only: a client trusting the test's CA is answered, plain HTTP on the port is not (HAProxy terminates
  TLS; Serve's proxy has no certificate in this mode, so an HTTPS answer is HAProxy's);
- a key's IP allow-list judges the caller's own address, in the same cases as behind Serve's proxy
  (tests/caller_address.py, also run by tests/security/test_access.py);
- SSE streams through it, unbuffered, with the browser's token in the query, and that token is in no file
  the service writes (Ray's logs, HAProxy's files) nor sends: Ray's HAProxy config has an access log to a
  syslog target, pointed here at a UDP socket of the test's, and it must receive nothing
  (wa_ray/entry/haproxy_config.py removes that log);
- HAProxy's own listeners only on 127.0.0.1, its admin socket 0600;
- a stop leaves no HAProxy and none of its files.

The service is a subprocess with its own Ray (RAY_TMPDIR of its own, so its logs can be searched), embedded
Redis and data dir, as in tests/integration/test_ready_means_usable.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from wa_ray.signing import HmacAuth
from wa_ray.storage.embedded import free_port
from tests.caller_address import ALLOWED, CASES, judged
from tests.tls_certs import make_ca_and_server_cert

pytestmark = [pytest.mark.asyncio, pytest.mark.own_cluster]

KEY_ID = "hap-admin"
SECRET = "hap-admin-secret-0123456789abcdef0123"
WORKSPACE = "hap-ws"
DEADLINE_S = 150


def _haproxies(under: str = "/") -> list[psutil.Process]:
    """HAProxies running a configuration our launcher wrote (under a given directory)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "haproxy" and any(a.endswith(".wa-ray") and a.startswith(under) for a in cmdline):
            found.append(proc)
    return found


def _listening(proc: psutil.Process) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


async def _wait_up(log: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until `wa-ray up` says it is up: from that instant the API must answer (Service.start)."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S and proc.poll() is None:
        if "wa-ray is up" in log.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not up in {DEADLINE_S}s (rc {proc.poll()}): {log.read_text()[-3000:]}")


def _make_key(env: dict[str, str]) -> dict[str, str]:
    made = subprocess.run(
        [sys.executable, "-m", "wa_ray.entry.cli", "keys", "create", "--role", "workspace", "--workspace",
         WORKSPACE, "--rate", "0", "--allow-cidr", ALLOWED, "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(made.stdout)


def _files_holding(needle: bytes, *roots: Path) -> list[str]:
    holding = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    holding.append(str(path))
            except OSError:
                continue  # a socket, or a file a stopping process removed
    return holding


def _datagrams(sock: socket.socket) -> list[bytes]:
    received = []
    while True:
        try:
            received.append(sock.recv(65536))
        except BlockingIOError:
            return received


async def test_haproxy_ingress_serves_https_judges_the_caller_streams_and_stops_clean(tmp_path: Path) -> None:
    if not shutil.which("haproxy"):
        pytest.fail("WA_INGRESS=haproxy needs Debian's haproxy (scripts/bootstrap --tests installs it)")
    port = free_port()
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    trust = ssl.create_default_context(cafile=str(ca))
    base = f"https://127.0.0.1:{port}"
    ray_tmp = Path(tempfile.mkdtemp(prefix="whp-", dir="/tmp"))  # Ray's socket paths must stay short
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.setblocking(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_") and k not in ("REDIS_URL", "RAY_ADDRESS")}
    env.update({"WA_INGRESS": "haproxy", "WA_TLS_CERT": str(cert), "WA_TLS_KEY": str(key),
                "WA_DATA_DIR": str(tmp_path / "data"), "WA_HTTP_PORT": str(port), "WA_API_KEY_ID": KEY_ID,
                "WA_API_KEY_SECRET": SECRET, "WA_WEB_URL": "http://127.0.0.1:9/", "WA_EGRESS_DNS": "false",
                "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1",
                "RAY_SERVE_HAPROXY_LOG_TARGET": f"127.0.0.1:{syslog.getsockname()[1]}"})
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "wa_ray.entry.cli", "up"], env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    workdirs: list[Path] = []
    try:
        await _wait_up(tmp_path / "up.log", proc)
        async with httpx.AsyncClient(base_url=base, auth=HmacAuth(KEY_ID, SECRET), verify=trust,
                                     timeout=30) as admin:
            first_call = await admin.get(f"/v1/workspaces/{WORKSPACE}/sessions")  # the instant it is up
            assert first_call.status_code == 200, (first_call.status_code, first_call.text[:300])
            token = (await admin.post(f"/v1/workspaces/{WORKSPACE}/stream-tokens")).json()["token"]
        haproxies = [p for p in _haproxies() if ("127.0.0.1", port) in _listening(p)]  # this service's
        assert haproxies, "no haproxy running our hardened configuration on the service's port"
        config = Path(next(a for a in haproxies[0].cmdline() if a.endswith(".wa-ray")))
        workdirs = [p for p in config.parents if p.name.startswith("wa-haproxy-")]
        haproxies = _haproxies(str(workdirs[0]))  # with any still draining after a reload
        assert stat.S_IMODE(workdirs[0].stat().st_mode) == 0o700
        admin_socket = next(config.parent.glob("admin.sock"))
        assert stat.S_IMODE(admin_socket.stat().st_mode) == 0o600

        listening = set().union(*(_listening(p) for p in haproxies))
        assert ("127.0.0.1", port) in listening
        assert all(addr[0] == "127.0.0.1" for addr in listening), listening  # stats, Prometheus: loopback

        try:
            async with httpx.AsyncClient(timeout=10) as plain:
                plain_status = str((await plain.get(f"http://127.0.0.1:{port}/healthz")).status_code)
        except httpx.HTTPError as exc:
            plain_status = type(exc).__name__
        assert plain_status != "200", "plain HTTP answered on the HTTPS port"

        workspace_key = await asyncio.to_thread(_make_key, env)
        seen = await judged(base, f"/v1/workspaces/{WORKSPACE}/sessions", workspace_key["key_id"],
                            workspace_key["secret"], verify=trust)
        assert seen == CASES

        async with httpx.AsyncClient(base_url=base, verify=trust, timeout=30) as browser:
            async with browser.stream("GET", f"/v1/workspaces/{WORKSPACE}/events", params={"token": token}) as s:
                assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
                first = await asyncio.wait_for(anext(s.aiter_text()), 15)  # before the stream ends: unbuffered
                assert first.startswith(": connected"), first
        assert _files_holding(token.encode(), ray_tmp, workdirs[0]) == []
        assert _datagrams(syslog) == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # `wa-ray up`'s stop
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        left = _haproxies(str(workdirs[0])) if workdirs else []
        for leftover in left:
            leftover.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        syslog.close()
    output = (tmp_path / "up.log").read_text()[-3000:]
    assert proc.returncode == 0, f"`wa-ray up` did not stop cleanly (rc {proc.returncode}): {output}"
    assert not left, f"HAProxy outlived the service: {[p.pid for p in left]}"
    assert workdirs and not workdirs[0].exists(), "the HAProxy files outlived the service"
