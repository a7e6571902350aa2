"""A whole service whose Serve proxy terminates TLS itself (WA_TLS_CERT / WA_TLS_KEY), in its own Ray cluster.

Run by tests/security/test_tls.py in a subprocess with the cert, key and CA the test made. Prints
RESULT {...}: what a client that trusts the CA got over HTTPS, what a client with the default trust
store got, and what plain HTTP on the same port got.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import tempfile
from pathlib import Path

import httpx
import orjson

from wa_ray.storage.embedded import free_port
from wa_ray.config import Settings
from wa_ray.entry.service import Service


def run(cert: str, key: str, ca: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="wa-ray-tls-") as tmp:
        settings = Settings(data_dir=Path(tmp), http_port=free_port(), web_url="http://127.0.0.1:9/",
                            tls_cert=Path(cert), tls_key=Path(key), spare_pages=0)
        service = Service(settings).start()
        try:
            out: dict[str, object] = {"base_url": service.base_url}
            with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=20) as trusting:
                r = trusting.get(f"{service.base_url}/healthz")
                out["https_status"] = r.status_code
            try:
                with httpx.Client(timeout=20) as default:  # the system's trust store: our CA is not in it
                    default.get(f"{service.base_url}/healthz")
                out["untrusted"] = "accepted"
            except httpx.ConnectError as exc:
                out["untrusted"] = "refused: " + type(exc.__context__ or exc).__name__
            try:
                plain = httpx.get(f"http://127.0.0.1:{settings.http_port}/healthz", timeout=20)
                out["plain_http"] = plain.status_code
            except httpx.HTTPError as exc:
                out["plain_http"] = "failed: " + type(exc).__name__
            return out
        finally:
            service.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args()
    sys.stdout.write("RESULT " + orjson.dumps(run(args.cert, args.key, args.ca)).decode() + "\n")
