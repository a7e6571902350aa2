"""Outgoing calls always check certificates. (That the Serve proxy speaks HTTPS only is checked on `wa-ray up`
itself, by tests/integration/test_ready_means_usable.py, which starts the service with a certificate.)

Certificates come from tests/tls_certs.py: a CA of the test's own and a server certificate for
127.0.0.1/localhost signed by it. Traffic stays on loopback, to listeners the test owns.
"""

from __future__ import annotations

import ast
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from tests.tls_certs import make_ca_and_server_cert

REPO = Path(__file__).resolve().parents[2]
SERVICE_CODE = ("actors", "serve_app", "storage", "sessions", "supervisors", "wa_ray")


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path):
    """A loopback HTTPS server with a certificate from a CA no trust store has."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", ca
    finally:
        server.shutdown()
        server.server_close()


async def test_outgoing_clients_refuse_a_certificate_they_cannot_verify(https_server) -> None:
    url, ca = https_server
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca))) as trusting:
        assert (await trusting.get(url)).text == "hello"  # the server works: the refusal below is the check's
    async with httpx.AsyncClient() as client:  # how actors/ build their clients: httpx's default verification
        with pytest.raises(httpx.ConnectError) as err:
            await client.get(url)
    assert isinstance(err.value.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
        err.value)


def test_no_service_code_turns_certificate_checks_off() -> None:
    """verify=False, CERT_NONE or check_hostname=False anywhere in the service's code is a defect."""
    offenders = []
    for package in SERVICE_CODE:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.keyword) and node.arg in ("verify", "check_hostname") and (
                        isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path.relative_to(REPO)}:{node.value.lineno} {node.arg}=False")
                if isinstance(node, ast.Attribute) and node.attr in ("CERT_NONE", "_create_unverified_context"):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.attr}")
                if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "check_hostname"
                                                         for t in node.targets)
                        and isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} check_hostname = False")
    assert not offenders, offenders

