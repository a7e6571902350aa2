"""HTTPS only: the Serve proxy terminates TLS itself, and outgoing calls always check certificates.

Certificates are made here: a CA of the test's own and a server certificate for 127.0.0.1/localhost
signed by it. Traffic stays on loopback, to listeners the test owns.
"""

from __future__ import annotations

import ast
import datetime
import ipaddress
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
SERVICE_CODE = ("actors", "serve_app", "storage", "sessions", "supervisors", "wa_ray")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1 and localhost, valid for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("wa-ray test CA")).issuer_name(_name("wa-ray test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def test_the_serve_proxy_speaks_https_only(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tests.scenarios.tls_service", "--cert", str(cert), "--key",
                           str(key), "--ca", str(ca)], capture_output=True, text=True, timeout=180, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"tls_service failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = orjson.loads(lines[-1][len("RESULT "):])
    assert result["base_url"].startswith("https://")
    assert result["https_status"] == 200  # a client that trusts the CA
    assert str(result["untrusted"]).startswith("refused"), result  # the default trust store does not
    assert result["plain_http"] != 200, result  # no plain-HTTP listener on that port


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

