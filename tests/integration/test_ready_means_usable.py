"""Up and ready mean usable: the instant `wa-ray up` says it is up, or /healthz or /readyz first answers 200, a
call signed with the bootstrap admin key (WA_API_KEY_ID/SECRET) is verified, never 403 `bad_signature`.

The service runs with a certificate (WA_TLS_CERT / WA_TLS_KEY, made by tests/tls_certs.py), so the same start
also shows the Serve proxy speaking HTTPS only: a client trusting the test's CA is answered, one with the
default trust store is refused, plain HTTP on the port gets no answer.

The service is `wa-ray up` itself, in a subprocess with its own Ray, embedded Redis and fresh data dir (one
driver, one cluster: the session `service` fixture owns this process's Ray). The test polls both probes as
fast as it can from the moment the process starts and watches its stdout for the "up" line; whichever comes
first, the signed call goes out at once. Before the fix the app was deployed before the key was written, so
the probes answered 200 for the moment the key did not exist yet.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from wa_ray.signing import HmacAuth
from wa_ray.storage.embedded import free_port
from tests.tls_certs import make_ca_and_server_cert

pytestmark = [pytest.mark.asyncio, pytest.mark.own_cluster]

KEY_ID = "ready-admin"
DEADLINE_S = 120  # Ray, Redis and the control plane on a busy 2-core machine; typically well under half


def _env(data_dir: Path, port: int, secret: str, cert: Path, key: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WA_") and k not in ("REDIS_URL", "RAY_ADDRESS")}
    env.update({"WA_TLS_CERT": str(cert), "WA_TLS_KEY": str(key),
                "WA_DATA_DIR": str(data_dir), "WA_HTTP_PORT": str(port), "WA_API_KEY_ID": KEY_ID,
                "WA_API_KEY_SECRET": secret, "WA_WEB_URL": "http://127.0.0.1:9/", "WA_EGRESS_DNS": "false",
                "COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
    return env


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM is `wa-ray up`'s stop (Service.stop: Serve, browsers, Ray, Redis); its own group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started (start_new_session)
            proc.wait(timeout=10)


async def test_a_call_signed_the_instant_the_service_reports_ready_is_verified(tmp_path: Path) -> None:
    port, secret = free_port(), secrets.token_urlsafe(32)
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    trust = ssl.create_default_context(cafile=str(ca))
    base = f"https://127.0.0.1:{port}"
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "wa_ray.entry.cli", "up"],
                            env=_env(tmp_path / "data", port, secret, cert, key),
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    loop = asyncio.get_running_loop()
    up_line = asyncio.Event()
    output: list[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "wa-ray is up" in line:
                loop.call_soon_threadsafe(up_line.set)

    threading.Thread(target=read_stdout, daemon=True).start()
    signed: dict[str, tuple[int, str]] = {}  # moment -> (status, body) of the call signed at that moment
    started = time.monotonic()

    https_only: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, timeout=10, verify=trust) as raw, \
            httpx.AsyncClient(base_url=base, auth=HmacAuth(KEY_ID, secret), timeout=30, verify=trust) as admin:

        async def signed_call(moment: str) -> None:
            r = await admin.get("/v1/workspaces/ready-ws/sessions")
            signed[moment] = (r.status_code, r.text[:300])

        async def probe(path: str) -> None:
            while time.monotonic() - started < DEADLINE_S and proc.poll() is None:
                try:
                    if (await raw.get(path)).status_code == 200:
                        return await signed_call(path)
                except httpx.TransportError:
                    pass  # nothing listens yet, or the proxy is coming up
                await asyncio.sleep(0.005)

        async def up() -> None:
            await up_line.wait()
            await signed_call("up")

        try:
            watch_up = asyncio.create_task(up())
            await asyncio.wait_for(asyncio.gather(probe("/healthz"), probe("/readyz")), DEADLINE_S + 5)
            await asyncio.wait_for(watch_up, max(1.0, DEADLINE_S - (time.monotonic() - started)))
            https_only.update(await _https_only(base, port))
        except TimeoutError:
            pass  # reported below with what was seen
        finally:
            if not watch_up.done():
                watch_up.cancel()
            _stop(proc)
            log.close()

    seen = f"signed calls: {signed}; stdout: {''.join(output)[-2000:]}; stderr: {(tmp_path / 'up.log').read_text()[-3000:]}"
    assert set(signed) == {"/healthz", "/readyz", "up"}, f"not every readiness moment was seen. {seen}"
    for moment, (status, body) in signed.items():
        assert 200 <= status < 300, f"a call signed the instant {moment} reported ready got {status}: {body}"
    assert proc.returncode == 0, f"`wa-ray up` did not stop cleanly on SIGTERM (rc {proc.returncode}). {seen}"
    assert https_only.get("untrusted", "").startswith("refused"), https_only  # the default trust store
    assert https_only.get("plain_http") not in (None, "200"), https_only  # no plain-HTTP listener there


async def _https_only(base: str, port: int) -> dict[str, str]:
    """What a client with the default trust store and one speaking plain HTTP to the same port got."""
    out: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(timeout=20) as default:  # the system's trust store: the test's CA is not in it
            await default.get(f"{base}/healthz")
        out["untrusted"] = "accepted"
    except httpx.ConnectError as exc:
        out["untrusted"] = "refused: " + type(exc.__context__ or exc).__name__
    try:
        async with httpx.AsyncClient(timeout=20) as plain:
            out["plain_http"] = str((await plain.get(f"http://127.0.0.1:{port}/healthz")).status_code)
    except httpx.HTTPError as exc:
        out["plain_http"] = "failed: " + type(exc).__name__
    return out
