"""The HAProxy launcher of WA_INGRESS=haproxy (wa_ray/entry/haproxy_config.py) on configurations rendered by
Ray's own HAProxy code (so a Ray upgrade that changes its template fails here first), each result checked by
Debian's haproxy itself (`haproxy -c`). The running service: tests/integration/test_haproxy_ingress.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ray.serve._private.haproxy import BackendConfig, HAProxyApi, HAProxyConfig, ServerConfig
from ray.serve.config import HTTPOptions

from wa_ray.config import Settings
from wa_ray.entry.haproxy_config import HardenOptions, UnexpectedConfig, harden
from wa_ray.entry.haproxy_ingress import HAProxyIngress, IngressUnavailable
from tests.tls_certs import make_ca_and_server_cert


def rays_config(workdir: Path, *, metrics: bool = False, host: str = "127.0.0.1") -> str:
    """What Ray's HAProxyManager writes for one Ingress replica and the fallback proxy."""
    cfg = HAProxyConfig(http_options=HTTPOptions(host=host, port=8000), socket_path=str(workdir / "admin.sock"),
                        server_state_base=str(workdir), server_state_file=str(workdir / "server-state"),
                        metrics_enabled=metrics, metrics_socket_path=str(workdir / "metrics.sock"), is_head=True)
    backend = BackendConfig(name="http-wa-ray", path_prefix="/", app_name="wa-ray",
                            servers=[ServerConfig(name="SERVE_REPLICA_wa-ray-Ingress-a", host="127.0.0.1", port=30000)],
                            fallback_server=ServerConfig(name="SERVE_PROXY_ACTOR-fallback", host="127.0.0.1",
                                                         port=8500))
    api = HAProxyApi(cfg, backend_configs={"wa-ray": backend}, config_file_path=str(workdir / "haproxy.cfg"))
    api._generate_config_file_internal()
    return (workdir / "haproxy.cfg").read_text()


def haproxy_accepts(config: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    path = workdir / "checked.cfg"
    path.write_text(config)
    return subprocess.run([_haproxy(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


def _haproxy() -> str:
    found = shutil.which("haproxy")
    if not found:
        pytest.fail("needs Debian's haproxy (scripts/bootstrap --tests installs it)")
    return found


def _lines(config: str, section: str) -> list[str]:
    lines, inside = [], False
    for line in config.splitlines():
        if line and not line[0].isspace():
            inside = line.strip() == section
        elif inside:
            lines.append(line.strip())
    return lines


def test_the_caller_is_forwarded_and_nothing_is_logged_or_listens_beyond_loopback(tmp_path: Path) -> None:
    original = rays_config(tmp_path)
    assert "bind :" in original and "log 127.0.0.1:514" in original and "mode 666" in original  # what is changed
    hardened = harden(original, HardenOptions())

    frontend = _lines(hardened, "frontend http_frontend")
    assert frontend[:3] == ["bind 127.0.0.1:8000", "option forwardfor",
                            "http-request set-header X-Forwarded-Proto http"]
    logs = [line.strip() for line in hardened.splitlines() if line.strip().split()[:1] == ["log"]]
    assert set(logs) == {"log global"}, logs  # no target anywhere: `log global` then logs nowhere
    binds = [line.strip() for line in hardened.splitlines() if line.strip().startswith("bind ")]
    assert binds and all(b.startswith("bind 127.0.0.1:") for b in binds), binds
    assert "mode 600 level admin" in hardened and "mode 666" not in hardened
    checked = haproxy_accepts(hardened, tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_tls_is_terminated_by_the_frontend_with_the_operators_files(tmp_path: Path) -> None:
    _, cert, key = make_ca_and_server_cert(tmp_path)
    pem = tmp_path / "server-links" / "server.pem"
    pem.parent.mkdir()
    pem.symlink_to(cert)
    pem.with_name("server.pem.key").symlink_to(key)  # what HAProxyIngress lays out: HAProxy finds `<crt>.key`
    hardened = harden(rays_config(tmp_path), HardenOptions(tls_pem=pem))
    assert _lines(hardened, "frontend http_frontend")[:3] == [
        f"bind 127.0.0.1:8000 ssl crt {pem}", "option forwardfor", "http-request set-header X-Forwarded-Proto https"]
    checked = haproxy_accepts(hardened, tmp_path)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("host, bind", [("0.0.0.0", "bind 0.0.0.0:8000"), ("::", "bind :::8000"),
                                        ("192.0.2.10", "bind 192.0.2.10:8000")])
def test_the_frontend_binds_where_the_operator_said(tmp_path: Path, host: str, bind: str) -> None:
    """Serve is given 127.0.0.1 in this mode (the replica and the fallback proxy stay on loopback); the frontend
    alone takes WA_HTTP_HOST. HAProxy's own listeners stay on loopback whatever it is."""
    hardened = harden(rays_config(tmp_path), HardenOptions(frontend_host=host))
    assert _lines(hardened, "frontend http_frontend")[0] == bind
    assert _lines(hardened, "listen stats")[0].startswith("bind 127.0.0.1:")
    assert "server SERVE_REPLICA_wa-ray-Ingress-a 127.0.0.1:30000" in hardened
    checked = haproxy_accepts(hardened, tmp_path)  # parses the address, binds nothing
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("change", ["metrics log", "no frontend bind", "no admin socket", "two frontend binds",
                                    "a gRPC frontend", "a listener on another address"])
def test_a_configuration_of_another_shape_is_refused(tmp_path: Path, change: str) -> None:
    config = rays_config(tmp_path, metrics=change == "metrics log")  # a per-request log line to a socket
    if change == "no frontend bind":
        config = config.replace("    bind 127.0.0.1:8000\n", "")
    if change == "no admin socket":
        config = "\n".join(line for line in config.splitlines() if "stats socket" not in line)
    if change == "two frontend binds":
        config = config.replace("    bind 127.0.0.1:8000\n", "    bind 127.0.0.1:8000\n    bind 127.0.0.1:8001\n")
    if change == "a gRPC frontend":  # not a line Ray writes today: one that binds every interface its own way
        config += "frontend grpc_frontend\n    bind :9000 proto h2\n    default_backend default_backend\n"
    if change == "a listener on another address":
        config = config.replace("  bind *:8404\n", "  bind 10.1.2.3:8404\n")
    with pytest.raises(UnexpectedConfig):
        harden(config, HardenOptions())


def _fake_haproxy(tmp_path: Path) -> Path:
    """Stands in for the binary the launcher execs: records its arguments and the config it was given."""
    fake = tmp_path / "fake-haproxy"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncat \"$3\" > {tmp_path}/seen.cfg\n")
    fake.chmod(0o700)
    return fake


def _launch(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "ray.cfg"
    source.write_text(config)
    return subprocess.run([sys.executable, "-m", "wa_ray.entry.haproxy_config", "--haproxy",
                           str(_fake_haproxy(tmp_path)), "--", "-db", "-f", str(source), "-dR", "-sf", "123", "-x",
                           "/x/admin.sock"], capture_output=True, text=True, timeout=60)


def test_the_launcher_passes_rays_arguments_with_the_hardened_config(tmp_path: Path) -> None:
    done = _launch(tmp_path, rays_config(tmp_path))
    assert done.returncode == 0, done.stderr
    hardened = tmp_path / "ray.cfg.wa-ray"
    assert (tmp_path / "argv").read_text().split() == ["-db", "-f", str(hardened), "-dR", "-sf", "123", "-x",
                                                        "/x/admin.sock"]
    assert "option forwardfor" in (tmp_path / "seen.cfg").read_text()
    assert stat.S_IMODE(hardened.stat().st_mode) == 0o600


def test_the_launcher_refuses_to_start_haproxy_on_an_unexpected_config(tmp_path: Path) -> None:
    done = _launch(tmp_path, rays_config(tmp_path, metrics=True))
    assert done.returncode == 78
    assert "refusing to start HAProxy" in done.stderr and "log target" in done.stderr
    assert not (tmp_path / "argv").exists()  # haproxy never ran


def test_the_ingress_needs_its_binary_and_a_ray_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(IngressUnavailable, match="WA_RAY_ADDRESS"):
        HAProxyIngress.prepare(Settings(data_dir=tmp_path, ingress="haproxy", ray_address="127.0.0.1:6379"))
    with pytest.raises(IngressUnavailable, match="no haproxy binary"):
        HAProxyIngress.prepare(Settings(data_dir=tmp_path, ingress="haproxy", haproxy_binary=str(tmp_path / "none")))


def test_the_environment_is_set_for_ray_and_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _haproxy()
    monkeypatch.setenv("RAY_SERVE_HAPROXY_NBTHREAD", "7")
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    ingress = HAProxyIngress.prepare(Settings(data_dir=tmp_path, ingress="haproxy"))
    launcher = Path(ingress.environment["RAY_SERVE_HAPROXY_BINARY_PATH"])
    assert stat.S_IMODE(ingress.workdir.stat().st_mode) == 0o700 and os.access(launcher, os.X_OK)
    ingress.apply()
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and os.environ["RAY_SERVE_HAPROXY_NBTHREAD"] == "1"
    ingress.close()
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in os.environ and os.environ["RAY_SERVE_HAPROXY_NBTHREAD"] == "7"
    assert not ingress.workdir.exists()
