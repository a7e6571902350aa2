"""Standard Webhooks across three implementations: npm's `standardwebhooks` signs, PHP's WebhookVerifier verifies.

The npm package (pinned by tests/php/npm/package-lock.json, installed by scripts/bootstrap with `npm ci`) signs
a single event and a batch (a JSON array, as an endpoint with batching delivers it) under a `whsec_` secret.
PyPI's `standardwebhooks` must produce the very same signature, PHP must verify both deliveries and read their
events, and must refuse each with one byte of the body, the id or the timestamp changed. No service needed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.php.conftest import PhpRunner

NPM_DIR = Path(__file__).resolve().parent / "npm"


def _npm_sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/bootstrap --tests"
    assert (NPM_DIR / "node_modules" / "standardwebhooks").is_dir(), "run scripts/bootstrap (npm ci in tests/php/npm)"
    done = subprocess.run([node, str(NPM_DIR / "sign.js"), secret, msg_id, str(ts)], input=body, capture_output=True,
                          timeout=30, cwd=NPM_DIR)
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["npm_verifies"] is True
    return out["webhook-signature"]


def _event(event_id: str, type_: str, data: dict) -> dict:
    return {"id": event_id, "type": type_, "workspace_id": "acme", "session_id": "s1", "ts": time.time(), "data": data}


async def test_npm_signed_deliveries_verify_in_php(run_php: PhpRunner, tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    single = json.dumps(_event("1765000000000-0", "message.received", {"text": "ünïcode ✓ / \"quoted\""}),
                        ensure_ascii=False).encode()
    batch = json.dumps([_event("1765000000001-0", "session.qr", {"qr": "2@x,y==,z", "seq": 1, "expires_in": 60}),
                        _event("1765000000002-0", "session.status",
                               {"state": "qr_required", "previous": "initializing", "reason": "scan"})]).encode()
    cases = {"single": ("1765000000000-0", single, [("1765000000000-0", "message.received")]),
             "batch": ("bat_npm_1", batch, [("1765000000001-0", "session.qr"), ("1765000000002-0", "session.status")])}

    async def php_events(name: str, headers: dict[str, str], body: bytes):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"headers": headers, "body_b64": base64.b64encode(body).decode()}))
        return await run_php("tests/verify_webhook.php", str(path), "--events", env={"WA_RAY_WEBHOOK_SECRET": secret})

    for name, (msg_id, body, expected) in cases.items():
        ts = int(time.time())
        signature = _npm_sign(secret, msg_id, ts, body)
        # PyPI's signer gives the same bytes for the same input: the two references agree before PHP is asked
        assert signature == Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body), name
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}

        ok = await php_events(name, headers, body)
        assert ok.returncode == 0, (name, str(ok))
        assert [(e["id"], e["type"]) for e in ok.json()["events"]] == expected, name

        tampered = bytearray(body)
        tampered[len(tampered) // 2] ^= 0x01
        refusals = {
            "body": await php_events(f"{name}-body", headers, bytes(tampered)),
            "id": await php_events(f"{name}-id", headers | {"webhook-id": msg_id + "0"}, body),
            "timestamp": await php_events(f"{name}-ts", headers | {"webhook-timestamp": str(ts + 1)}, body),
        }
        for what, run in refusals.items():
            assert run.returncode == 2, (name, what, str(run))
            assert run.stderr.startswith("refused:"), (name, what, str(run))

    # a batch is never mistaken for one event by verify()
    ts = int(time.time())
    headers = {"webhook-id": "bat_npm_1", "webhook-timestamp": str(ts),
               "webhook-signature": _npm_sign(secret, "bat_npm_1", ts, batch)}
    path = tmp_path / "batch-as-one.json"
    path.write_text(json.dumps({"headers": headers, "body_b64": base64.b64encode(batch).decode()}))
    as_one = await run_php("tests/verify_webhook.php", str(path), env={"WA_RAY_WEBHOOK_SECRET": secret})
    assert as_one.returncode == 2 and "verifyEvents" in as_one.stderr, str(as_one)
