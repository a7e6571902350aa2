"""The service's logs (every Ray worker's, Serve's included): JSON lines at WA_LOG_LEVEL, and never a secret,
a token or a message's text, after a flow that handles all of those (a linked number sends and receives, a
webhook with a secret fails and is retried, a workspace key and a stream token are minted and used)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from pathlib import Path

import ray

from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import put_pacing, send, wait_status
from tests.receiver import running_receiver

WS = "logs-check"


def _log_files() -> list[Path]:
    node = ray._private.worker._global_node  # the driver of the test service's own Ray
    return [p for p in Path(node.get_logs_dir_path()).rglob("*") if p.is_file() and p.suffix in (".out", ".err", ".log")]


async def test_logs_are_json_and_carry_no_secret_token_or_text(api, phone_api, service, admin_secret) -> None:
    marker = f"private words {secrets.token_hex(8)}"
    hook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    url_token = secrets.token_hex(12)  # a tenant's URL may carry its own credential
    await put_pacing(api, WS, enabled=False)
    with running_receiver() as hook:
        hook.status = 500  # every delivery fails once or more: the dispatcher logs its retries
        assert (await api.put(f"/v1/workspaces/{WS}/webhook", json={"url": f"{hook.url}?token={url_token}",
                                                                          "secret": hook_secret})
                ).status_code == 204
        url = await stream_url(api, service.base_url, WS)
        token = url.rpartition("token=")[2]
        async with collect_events(url) as events:
            await link_session(api, phone_api, events, WS, "l1", "15552270001")
            sent = await send(api, WS, "15552270002", marker, session_id="l1")
            await wait_status(api, WS, sent["message_id"], {"sent", "delivered", "read"})
            reply = await phone_api.post("/_phone/15552270002/messages", json={"to": "15552270001", "body": marker + " back"})
            assert reply.status_code in (200, 201), reply.text
            await events.wait_for(lambda e: e["type"] == "message.received")
        await asyncio.sleep(2)  # retries happen, logs flush
    secrets_ = {"message text": marker, "webhook secret": hook_secret, "stream token": token,
                "admin secret": admin_secret, "webhook URL's token": url_token}
    ours = 0
    for path in _log_files():
        text = path.read_text(errors="replace")
        leaked = [what for what, value in secrets_.items() if value in text]
        assert not leaked, f"{leaked} in {path.name}"
        for line in text.splitlines():
            if '"wa_ray.' in line:
                record = json.loads(line[line.index("{"):])
                assert record["levelname"] in ("INFO", "WARNING", "ERROR", "CRITICAL"), record  # WA_LOG_LEVEL=INFO
                assert record["message"]
                ours += 1
    assert ours > 0, "no JSON log line of ours found"
