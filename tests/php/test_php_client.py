"""The PHP client (clients/php) with real php-cli: its phpunit suite, then the live service end to end.

1. phpunit: the request signer against vectors of wa_ray.signing.HmacAuth, the webhook verifier against a
   delivery signed by the `standardwebhooks` package, the client's requests and error handling.
2. A workspace key drives PHP through a session's life: PHP creates it and reads its QR, the simulator's phone
   scans it, PHP waits for `connected`, sends a text (retried under one Idempotency-Key) and reads its status,
   the recipient's phone holds it exactly once, the message.sent webhook verifies in PHP, the session.qr and
   session.status deliveries pass the Laravel provider's route and are relayed as Echo broadcasts; PHP reads the chat's
   messages, marks it read, sets presence, sets the webhook policy and runs a draft campaign (CSV recipients,
   refused pause, cancel, delete), then deletes the session. A wrong secret is refused (403) as PHP sees it.
3. Webhooks across implementations: a delivery of the running service verifies in PHP as received and is
   refused with one byte of its body, its id or its timestamp changed, or under another secret; payloads signed
   by the Python reference signer (a `whsec_` secret and a first-form one) verify in PHP.
4. Webhook endpoints from PHP: a batching endpoint with a generated secret and a header; the service's batch (a
   JSON array) verifies in PHP event by event and passes the Laravel route; dead letters, replay, delete.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from wa_ray.actors.webhook_signing import standard_secret_of
from wa_ray.events import MESSAGE_RECEIVED, SESSION_STATUS, Event
from wa_ray.storage.events import EventLog
from wa_ray.storage.redis_client import connect
from tests.flows import poll, wait_state
from tests.messages.helpers import inbox, put_pacing
from tests.php.conftest import CLIENT_DIR, PhpRunner, php_binary
from tests.receiver import Delivery, running_receiver


def _number() -> str:
    return "1555" + str(secrets.randbelow(10**7)).zfill(7)


def _whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def _entries(phone_api, number: str, key: str) -> list[dict] | None:
    """The inbox entries of `number` whose id is `key` (the tail of a wa_message_id), None while there are none."""
    found = [m for m in await inbox(phone_api, number) if m["id"] == key]
    return found or None


def _write_delivery(path: Path, headers: dict[str, str], body: bytes) -> Path:
    path.write_text(json.dumps({"headers": headers, "body_b64": base64.b64encode(body).decode()}))
    return path


def test_phpunit_suite_passes() -> None:
    php_binary()
    done = subprocess.run(["phpunit", "-c", str(CLIENT_DIR / "phpunit.xml")], capture_output=True, text=True,
                          timeout=120, cwd=CLIENT_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"OK \((\d+) tests?, (\d+) assertions?\)", done.stdout)
    assert passed and int(passed.group(1)) >= 42, done.stdout  # the Laravel tests too


async def test_a_session_end_to_end_from_php(api, phone_api, service, make_key, unique_ws, run_php: PhpRunner,
                                             tmp_path: Path) -> None:
    ws, sid, phone, to = unique_ws, "php1", _number(), _number()
    key = await make_key("workspace", ws)
    env = {"WA_RAY_URL": service.base_url, "WA_RAY_KEY_ID": key.key_id, "WA_RAY_SECRET": key.secret,
           "WA_RAY_WS": ws}
    await put_pacing(api, ws, enabled=False)  # no human-like delay before the send: this test times the path
    hook_secret = _whsec()
    with running_receiver() as hook:
        assert (await run_php("tests/e2e.php", "webhook", hook.url, hook_secret, env=env)).returncode == 0

        created = await run_php("tests/e2e.php", "create", sid, env=env)
        assert created.returncode == 0, created
        assert created.json()["session_id"] == sid and created.json()["workspace_id"] == ws

        await wait_state(api, ws, sid, "qr_required", timeout=45)
        qr = await run_php("tests/e2e.php", "qr", sid, env=env)
        assert qr.returncode == 0, qr
        assert qr.json()["qr"], qr
        scanned = await phone_api.post(f"/_phone/{phone}/scan", json={"qr": qr.json()["qr"]})
        assert scanned.status_code == 200, scanned.text

        text, idem = f"hello from php {secrets.token_hex(4)}", f"php-{secrets.token_hex(6)}"
        sent = await run_php("tests/e2e.php", "send", sid, to, text, idem, env=env)
        assert sent.returncode == 0, sent
        summary = sent.json()
        assert summary["accepted"] == "queued"
        assert summary["status"] in ("sent", "delivered", "read"), summary["message"]
        assert summary["message"]["session_id"] == sid and summary["message"]["to"] == to
        assert sid in summary["listed"]
        assert summary["qr_error"] == {"status": 409, "code": "no_qr"}
        assert summary["missing_message"]["status"] == 404
        assert summary["stream_token"]["has_token"] and summary["stream_token"]["workspace_id"] == ws
        assert summary["stream_token"]["session_id"] == sid

        # the admin sees the same message; the recipient's phone holds it exactly once (the retry was not sent)
        record = (await api.get(f"/v1/workspaces/{ws}/messages/{summary['message_id']}")).json()
        assert record["status"] == summary["status"] or record["status"] in ("delivered", "read")

        async def on_phone() -> list[str] | None:
            bodies = [m["body"] for m in await inbox(phone_api, to)]
            return bodies if text in bodies else None

        await poll(on_phone, f"{text!r} on {to}'s phone")
        await asyncio.sleep(1.0)  # a duplicate would land right behind the first
        assert [m["body"] for m in await inbox(phone_api, to)].count(text) == 1

        # the service's message.sent webhook for it verifies in PHP
        delivery: Delivery = await hook.wait_for(
            lambda d: b'"message.sent"' in d.body and summary["message_id"].encode() in d.body, timeout=30)
        verified = await run_php("tests/verify_webhook.php",
                                 str(_write_delivery(tmp_path / "sent.json", delivery.headers, delivery.body)),
                                 env={"WA_RAY_WEBHOOK_SECRET": hook_secret})
        assert verified.returncode == 0, verified
        assert verified.json() == {"id": delivery.headers["webhook-id"], "type": "message.sent"}

        # the service's own session.qr and session.status deliveries through the Laravel provider's route: each
        # dispatched, and relayed to the workspace's private channel as Echo receives them; a forged one is 400
        def of_type(d: Delivery, type_: str, state: str | None = None) -> bool:
            event = json.loads(d.body)
            return event["type"] == type_ and (state is None or event["data"]["state"] == state)

        qr_hook = await hook.wait_for(lambda d: of_type(d, "session.qr"), timeout=5)
        status_hook = await hook.wait_for(lambda d: of_type(d, "session.status", "connected"), timeout=5)
        forged = bytearray(status_hook.body)
        forged[len(forged) // 2] ^= 0x01
        laravel = await run_php("tests/laravel_webhook.php", *(
            str(_write_delivery(tmp_path / f"laravel-{n}.json", d.headers, body)) for n, (d, body) in enumerate(
                ((qr_hook, qr_hook.body), (status_hook, status_hook.body), (status_hook, bytes(forged))))),
            env={"WA_RAY_WEBHOOK_SECRET": hook_secret})
        assert laravel.returncode == 0, laravel
        qr_out, status_out, forged_out = laravel.json()
        qr_event, status_event = json.loads(qr_hook.body), json.loads(status_hook.body)
        assert qr_out["status"] == 204 and status_out["status"] == 204
        for out, event, hooked in ((qr_out, qr_event, qr_hook), (status_out, status_event, status_hook)):
            assert out["received"] == [{"type": event["type"], "id": event["id"],
                                        "delivery_id": hooked.headers["webhook-id"]}]
        assert qr_out["broadcasts"] == [{"channels": [f"private-workspace.{ws}"], "event": "qr-code-generated",
                                         "payload": {"workspace_id": ws, "session_id": sid, **qr_event["data"],
                                                     "socket": None}}]
        assert status_out["broadcasts"] == [{"channels": [f"private-workspace.{ws}"], "event": "session-status-changed",
                                             "payload": {"workspace_id": ws, "session_id": sid, "state": "connected",
                                                         "previous": status_event["data"]["previous"],
                                                         "reason": status_event["data"]["reason"], "socket": None}}]
        assert forged_out == {"status": 400, "received": [], "broadcasts": []}

    # media: PHP uploads a PNG, reads it back, sends it as an image; the phone holds that very file
    media = await run_php("tests/e2e.php", "media", sid, to, env=env)
    assert media.returncode == 0, media
    got = media.json()
    assert got["message"]["status"] in ("sent", "delivered", "read"), got["message"]
    entry_id = got["message"]["wa_message_id"].rsplit("_", 1)[1]
    (entry,) = await poll(lambda: _entries(phone_api, to, entry_id), f"the image on {to}'s phone")
    assert (entry["kind"], entry["caption"]) == ("image", "from php")
    assert (entry["media"]["mimetype"], entry["media"]["sha256"]) == ("image/png", got["media"]["sha256"])
    assert f"{to}@c.us" in got["chats"]
    assert set(got["contacts_page"]) == {"items", "next_cursor"}
    assert got["exists"]["number"] == to and isinstance(got["exists"]["exists"], bool)
    assert got["provider"]["priority"] in ("webjs", "meta") and isinstance(got["provider"]["sessions"], dict)

    # the rest of the API from PHP: chat messages, read, presence, groups, webhook policy, a draft campaign
    extras = await run_php("tests/e2e.php", "extras", sid, to, env=env)
    assert extras.returncode == 0, extras
    got = extras.json()
    assert set(got["messages"]["keys"]) == {"items", "has_more", "before_cursor", "after_cursor"}
    assert text in got["messages"]["texts"], got["messages"]
    assert got["read"] == {"chat_id": f"{to}@c.us", "read": True}
    assert got["presence"] == {"chat_id": f"{to}@c.us", "state": "typing"}
    assert set(got["groups"]) == {"items", "next_cursor"}
    assert (got["policy"]["max_attempts"], got["policy"]["base_delay_s"]) == (4, 0.5)
    assert got["policy_read"] == got["policy"]
    assert got["dead_letters"] == {"total": 0, "items": []} and got["replayed"] == {"replayed": 0}
    camp = got["campaign"]
    assert camp["status"] == "draft" and camp["added"] == {"added": 1, "recipients": 1}
    assert (camp["bad_csv"]["status"], camp["bad_csv"]["code"]) == (422, "csv_invalid")
    assert camp["bad_csv"]["details"]["errors"][0]["row"] == 2
    assert "not-a-phone" not in extras.stdout  # bad rows are reported by position, never by value
    assert (camp["pause"]["status"], camp["pause"]["code"]) == (409, "campaign_state")
    assert camp["read"] == 1 and camp["listed"] is True and camp["cancelled"] == "cancelled"

    refused = await run_php("tests/e2e.php", "create", "php2", env=env | {"WA_RAY_SECRET": key.secret + "x"})
    assert refused.returncode == 3, refused
    assert refused.json()["error"]["status"] == 403
    assert key.secret not in refused.stdout + refused.stderr

    deleted = await run_php("tests/e2e.php", "delete", sid, env=env)
    assert deleted.returncode == 0, deleted
    assert deleted.json()["after"] == {"status": 404, "code": "not_found"}
    assert (await api.get(f"/v1/workspaces/{ws}/sessions/{sid}")).status_code == 404


def _signed_at(secret: str, msg_id: str, body: bytes, at: float) -> dict[str, str]:
    """Headers the Python reference signer gives `body` at unix time `at`."""
    when = datetime.fromtimestamp(int(at), tz=timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at)),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body)}


async def _publish(service, ws: str) -> str:
    redis = connect(service.config.redis_url)
    try:
        return await EventLog(redis).publish(Event(MESSAGE_RECEIVED, ws, "s1", {"text": "héllo from the service"}))
    finally:
        await redis.aclose()


async def test_webhooks_verify_across_implementations(service, make_key, unique_ws, run_php: PhpRunner,
                                                      tmp_path: Path) -> None:
    ws, secret = unique_ws, _whsec()
    key = await make_key("workspace", ws)
    env = {"WA_RAY_URL": service.base_url, "WA_RAY_KEY_ID": key.key_id, "WA_RAY_SECRET": key.secret,
           "WA_RAY_WS": ws}
    with running_receiver() as hook:
        put = await run_php("tests/e2e.php", "webhook", hook.url, secret, env=env)
        assert put.returncode == 0, put
        event_id = await _publish(service, ws)
        delivery = await hook.wait_for(lambda d: d.headers.get("webhook-id") == event_id, timeout=30)

    async def verify(name: str, headers: dict[str, str], body: bytes, key_secret: str = secret):
        return await run_php("tests/verify_webhook.php", str(_write_delivery(tmp_path / name, headers, body)),
                             env={"WA_RAY_WEBHOOK_SECRET": key_secret})

    ok = await verify("as-received.json", delivery.headers, delivery.body)
    assert ok.returncode == 0, ok
    assert ok.json() == {"id": event_id, "type": "message.received"}

    body = bytearray(delivery.body)
    body[len(body) // 2] ^= 0x01  # one bit of one byte
    refusals = {
        "body": await verify("body.json", delivery.headers, bytes(body)),
        "id": await verify("id.json", delivery.headers | {"webhook-id": event_id + "0"}, delivery.body),
        "timestamp": await verify("ts.json", delivery.headers | {
            "webhook-timestamp": str(int(delivery.headers["webhook-timestamp"]) + 1)}, delivery.body),
        "secret": await verify("secret.json", delivery.headers, delivery.body, _whsec()),
        # correctly signed, but for a moment past the 300 s tolerance: a replay
        "stale": await verify("stale.json", _signed_at(secret, event_id, delivery.body, time.time() - 301),
                              delivery.body),
    }
    fresh = await verify("fresh.json", _signed_at(secret, event_id, delivery.body, time.time() - 290), delivery.body)
    assert fresh.returncode == 0, fresh  # the same signer inside the tolerance: only the age was refused
    for what, run in refusals.items():
        assert run.returncode == 2, (what, str(run))
        assert run.stderr.startswith("refused:"), (what, str(run))

    # signed by the Python reference implementation, verified by PHP: a whsec_ secret and a first-form secret
    now = datetime.now(tz=timezone.utc)
    payload = json.dumps({"id": "1-0", "type": "message.received", "workspace_id": ws, "session_id": None,
                          "ts": now.timestamp(), "data": {"text": "ünïcode ✓"}}, ensure_ascii=False).encode()
    for i, (verifier_secret, signer_secret) in enumerate(((secret, secret),
                                                          ("an-older-secret-0123456789",
                                                           standard_secret_of("an-older-secret-0123456789")))):
        msg_id = f"msg_ref_{i}"
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(signer_secret).sign(msg_id, now, payload)}
        ref = await verify(f"reference-{i}.json", headers, payload, verifier_secret)
        assert ref.returncode == 0, ref
        assert ref.json() == {"id": "1-0", "type": "message.received"}
        tampered = await verify(f"reference-{i}-tampered.json", headers, payload.replace(b"1-0", b"1-1"),
                                verifier_secret)
        assert tampered.returncode == 2, tampered


async def test_webhook_endpoints_from_php(service, make_key, unique_ws, run_php: PhpRunner, tmp_path: Path) -> None:
    """PHP adds a batching endpoint; the service's batch (a JSON array) verifies in PHP and passes the Laravel
    route event by event; PHP reads its dead letters, replays, deletes it."""
    ws = unique_ws
    key = await make_key("workspace", ws)
    env = {"WA_RAY_URL": service.base_url, "WA_RAY_KEY_ID": key.key_id, "WA_RAY_SECRET": key.secret,
           "WA_RAY_WS": ws}
    with running_receiver() as hook:
        made = await run_php("tests/e2e.php", "endpoint", hook.url, env=env)
        assert made.returncode == 0, made
        got = made.json()
        endpoint, secret = got["created"], got["created"]["secret"]
        assert secret.startswith("whsec_") and secret not in json.dumps(got["read"])
        assert (endpoint["events"], endpoint["header_names"], endpoint["batch"]) == (
            ["message.*"], ["X-Tenant"], {"max_events": 5, "max_wait_ms": 200})
        assert got["listed"] == [endpoint["id"]]
        assert got["updated"]["description"] == got["read"]["description"] == "from php, updated"

        redis = connect(service.config.redis_url)
        try:
            log = EventLog(redis)
            ids = [await log.publish(Event(MESSAGE_RECEIVED, ws, "s1", {"text": f"batched {i}"})) for i in range(3)]
            await log.publish(Event(SESSION_STATUS, ws, "s1", {"state": "connected"}))  # not subscribed
        finally:
            await redis.aclose()
        first = await hook.wait_for(lambda d: d.body.startswith(b"["), timeout=20)
        assert first.headers["x-tenant"] == "php"
        path = _write_delivery(tmp_path / "batch.json", first.headers, first.body)
        events = await run_php("tests/verify_webhook.php", str(path), "--events", env={"WA_RAY_WEBHOOK_SECRET": secret})
        assert events.returncode == 0, events
        batch_ids = [e["id"] for e in events.json()["events"]]
        assert batch_ids and set(batch_ids) <= set(ids)
        assert all(e["type"] == "message.received" for e in events.json()["events"])
        laravel = await run_php("tests/laravel_webhook.php", str(path), env={"WA_RAY_WEBHOOK_SECRET": secret})
        assert laravel.returncode == 0, laravel
        (out,) = laravel.json()
        assert out["status"] == 204 and out["broadcasts"] == []
        assert out["received"] == [{"type": "message.received", "id": i, "delivery_id": first.headers["webhook-id"]}
                                   for i in batch_ids]
        refused = await run_php("tests/verify_webhook.php", str(path), "--events", env={"WA_RAY_WEBHOOK_SECRET": _whsec()})
        assert refused.returncode == 2, refused

    ended = await run_php("tests/e2e.php", "endpoint-end", endpoint["id"], env=env)
    assert ended.returncode == 0, ended
    end = ended.json()
    assert end["dead_letters"] == {"total": 0, "items": []} and end["replayed"] == {"replayed": 0}
    assert end["after"]["status"] == 404 and end["unknown_replay"]["status"] == 404
