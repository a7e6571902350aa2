"""`wa-ray keys`: create/list/revoke against the running service's Redis, and offline on a data dir.

Also: no secret is ever stored in clear in Redis or written to a log.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import ray

from wa_ray.crypto import MasterKey
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.storage.redis_client import connect
from wa_ray.entry.data_redis import running_embedded_port
from wa_ray.signing import HmacAuth

pytestmark = pytest.mark.asyncio


async def wa_ray(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """The real command line, as an operator types it (`wa-ray keys ...`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "WA_REDIS_URL", "WA_MASTER_KEY")}
    cmd = [sys.executable, "-m", "wa_ray.entry.cli", "keys", "--data-dir", str(data_dir), *args]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, env=env, timeout=120)


async def test_create_list_revoke_against_the_running_service(service, raw, unique_ws) -> None:
    data_dir = service.settings.data_dir
    created = await wa_ray("create", "--role", "workspace", "--workspace", unique_ws, "--rate", "0", "--json",
                           "--label", "backend", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["workspace_id"] == unique_ws and len(key["secret"]) >= 32
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key["key_id"], key["secret"])) as client:
        assert (await client.get(f"/v1/workspaces/{unique_ws}/sessions")).status_code == 200
        assert (await client.get(f"/v1/workspaces/{unique_ws}-x/sessions")).status_code == 404

        listed = await wa_ray("list", "--json", data_dir=data_dir)
        assert listed.returncode == 0, listed.stderr
        rows = {row["key_id"]: row for row in json.loads(listed.stdout)}
        assert rows[key["key_id"]]["role"] == "workspace" and rows[key["key_id"]]["label"] == "backend"
        assert key["secret"] not in listed.stdout and "secret" not in listed.stdout
        table = await wa_ray("list", data_dir=data_dir)
        assert key["key_id"] in table.stdout and key["secret"] not in table.stdout

        again = await wa_ray("create", "--role", "read", "--id", key["key_id"], data_dir=data_dir)
        assert again.returncode == 1 and "exists" in again.stderr  # never silently replaces a key

        revoked = await wa_ray("revoke", key["key_id"], data_dir=data_dir)
        assert revoked.returncode == 0, revoked.stderr
        r = await client.get(f"/v1/workspaces/{unique_ws}/sessions")
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature"
    assert (await wa_ray("revoke", key["key_id"], data_dir=data_dir)).returncode == 1

    bad = await wa_ray("create", "--role", "workspace", data_dir=data_dir)
    assert bad.returncode == 2 and "workspace" in bad.stderr

    minted = await wa_ray("console-token", "--workspace", unique_ws, "--json", data_dir=data_dir)
    token = json.loads(minted.stdout)
    assert token["url"].endswith(f"/console#token={token['token']}")
    login = await raw.post("/console/session", json={"token": token["token"]}, headers={"X-WA-Console": "1"})
    assert login.status_code == 200 and login.json()["workspace_id"] == unique_ws
    assert "httponly" in login.headers["set-cookie"].lower()
    raw.cookies.clear()


async def test_offline_create_persists_for_the_next_start(tmp_path: Path) -> None:
    """No service running: the command starts the data dir's Redis for itself, and leaves nothing running."""
    (tmp_path / "master.key").write_text(MasterKey.generate_b64())
    created = await wa_ray("create", "--role", "admin", "--id", "ops", "--json", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secret"]
    assert running_embedded_port(tmp_path / "redis") is None  # stopped again

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        assert running_embedded_port(tmp_path / "redis") == server.port  # and found when running
        redis = connect(server.url)
        key = await ApiKeyStore(redis, MasterKey.from_b64((tmp_path / "master.key").read_text())).get("ops")
        await redis.aclose()
        assert key is not None and key.role == "admin" and key.secret == secret
        assert secret not in repr(key)
    finally:
        server.stop()

    empty = tmp_path / "fresh"
    empty.mkdir()
    missing = await wa_ray("list", data_dir=empty)
    assert missing.returncode != 0 and "master key" in missing.stderr
    assert not (empty / "master.key").exists()  # never generated behind the service's back


async def test_secrets_are_never_stored_in_clear_or_logged(service, admin_secret, api, make_key, live_redis,
                                                           unique_ws) -> None:
    key = await make_key("workspace", unique_ws)
    webhook_secret = "whsec-never-in-clear-0123456789"
    assert (await api.put(f"/v1/workspaces/{unique_ws}/webhook",
                          json={"url": "http://127.0.0.1:9/hook", "secret": webhook_secret})).status_code == 204
    bad = await api.put(f"/v1/workspaces/{unique_ws}/webhook", json={"url": "not a url", "secret": webhook_secret})
    assert bad.status_code == 422 and webhook_secret not in bad.text
    secrets_ = [admin_secret, key.secret, webhook_secret]

    async for name in live_redis.scan_iter(count=1000):
        kind = await live_redis.type(name)
        if kind == "string":
            values = [await live_redis.get(name) or ""]
        elif kind == "hash":
            values = list((await live_redis.hgetall(name)).values())
        elif kind == "stream":
            values = [str(fields) for _, fields in await live_redis.xrange(name, count=2000)]
        else:
            continue
        for value in values:
            assert not any(s in value for s in secrets_), name

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in secrets_), path
