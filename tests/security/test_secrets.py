"""Secrets: where the master key lives, what a blob is bound to, crash-safe rotation, the embedded Redis's
password, Chromium's sandbox, and certificate checks on outgoing calls.

The AAD attacks play a local user who can write Redis or the data dir but has no master key: they swap
or edit records; the service (or the store a process uses) must refuse, never act on the edited record.
The rotation test kills a real `rotate-key` half-way with SIGKILL and runs it again.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import ray
import redis as sync_redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wa_ray.crypto import DecryptError, MasterKey, decrypt
from wa_ray.master_keys import MasterKeyError, load_master_keys, read_key_file, write_key_file
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKeyStore
from wa_ray.storage.auth_store import FileAuthStore, RedisAuthStore
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.storage.providers import CloudCredentials, ProviderConfig, ProviderStore
from wa_ray.storage.redis_client import connect
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget
from wa_ray.config import Settings
from wa_ray.datadir_lock import hold_shared
from wa_ray.runtime import RuntimeConfig, chromium_launch_flags, chromium_sandbox_available
from wa_ray.signing import HmacAuth

REPO = Path(__file__).resolve().parents[2]


def new_key() -> MasterKey:
    return MasterKey(os.urandom(32))


# ---------------------------------------------------------------- the key is never an actor argument

def test_runtime_config_names_the_key_and_never_holds_it(tmp_path: Path) -> None:
    key = new_key()
    write_key_file(tmp_path / "master.key", [key])
    settings = Settings(data_dir=tmp_path, chromium="/bin/true")
    config = settings.runtime("redis://127.0.0.1:1/0", key.key_id.decode())
    blob = pickle.dumps(config) + repr(config).encode() + str(dataclasses.asdict(config)).encode()
    assert key.b64().encode() not in blob and key.key not in blob
    assert not any("key_b64" in f.name for f in dataclasses.fields(RuntimeConfig))
    assert load_master_keys(config) == (key,)  # and each process finds it from the reference
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_a_process_with_another_key_refuses_to_run(tmp_path: Path) -> None:
    write_key_file(tmp_path / "master.key", [new_key()])
    config = RuntimeConfig(redis_url="redis://x", web_url="http://x", data_dir=str(tmp_path),
                           master_key_file=str(tmp_path / "master.key"), master_key_id=new_key().key_id.decode())
    with pytest.raises(MasterKeyError, match="not the service's"):
        load_master_keys(config)
    env_config = dataclasses.replace(config, master_key_file=None, master_key_id="")
    with pytest.raises(MasterKeyError, match="WA_MASTER_KEY"):
        load_master_keys(env_config, env={})


async def test_the_live_service_keeps_the_key_out_of_ray_and_redis(service, live_redis) -> None:
    """The config the actors were constructed with, Ray's logs and every Redis value: no key, no Redis
    password."""
    (key,) = load_master_keys(service.config)
    password = (service.settings.data_dir / "redis" / "password").read_text().strip()
    from ray import cloudpickle

    assert key.b64().encode() not in cloudpickle.dumps(service.config)
    needles = [key.b64().encode(), key.key, base64.b64encode(key.key).decode().encode(), password.encode()]
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path
    async for name in live_redis.scan_iter(count=1000):
        if await live_redis.type(name) == "string":
            value = (await live_redis.get(name) or "").encode()
            assert not any(n in value for n in needles), name


# ---------------------------------------------------------------- associated data: swap and edit attacks

async def test_a_raised_role_makes_the_key_authenticate_nothing(service, make_key, live_redis, unique_ws) -> None:
    key = await make_key("workspace", unique_ws)
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key.key_id, key.secret)) as client:
        assert (await client.get(f"/v1/workspaces/{unique_ws}/sessions")).status_code == 200  # cached as opened
        assert (await client.get("/v1/audit")).status_code == 403
        await live_redis.hset(keys.api_key(key.key_id), mapping={"role": "admin", "workspace_id": ""})
        for path in ("/v1/audit", "/v1/workspaces", f"/v1/workspaces/{unique_ws}/sessions"):
            r = await client.get(path)
            assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature", (path, r.text)


async def test_a_secret_copied_onto_another_key_does_not_sign_for_it(service, make_key, live_redis,
                                                                      unique_ws) -> None:
    mine = await make_key("workspace", unique_ws)
    victim = await make_key("workspace", unique_ws + "-v")
    mine_blob = await live_redis.hget(keys.api_key(mine.key_id), "secret")
    await live_redis.hset(keys.api_key(victim.key_id), "secret", mine_blob)
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(victim.key_id, mine.secret)) as client:
        r = await client.get(f"/v1/workspaces/{unique_ws}-v/sessions")
    assert r.status_code == 403 and r.json()["error"]["code"] == "bad_signature"


async def test_auth_states_cannot_be_swapped_between_sessions(redis, tmp_path: Path) -> None:
    key = new_key()
    files = FileAuthStore(tmp_path, [key])
    await files.save("acme", "s1", b'{"account": "one"}')
    await files.save("acme", "s2", b'{"account": "two"}')
    root = tmp_path / "sessions" / "acme"
    (root / "s2" / "auth.bin").write_bytes((root / "s1" / "auth.bin").read_bytes())
    with pytest.raises(DecryptError):
        await files.load("acme", "s2")
    (tmp_path / "sessions" / "evil" / "s1").mkdir(parents=True)
    (tmp_path / "sessions" / "evil" / "s1" / "auth.bin").write_bytes((root / "s1" / "auth.bin").read_bytes())
    with pytest.raises(DecryptError):
        await files.load("evil", "s1")

    in_redis = RedisAuthStore(redis, [key])
    await in_redis.save("acme", "s1", b'{"account": "one"}')
    await redis.set(keys.auth_state("acme", "s3"), await redis.get(keys.auth_state("acme", "s1")))
    with pytest.raises(DecryptError):
        await in_redis.load("acme", "s3")
    assert await in_redis.load("acme", "s1") == b'{"account": "one"}'


async def test_webhook_secret_and_cloud_token_are_bound_to_where_they_go(redis) -> None:
    key = new_key()
    hooks = WebhookConfigStore(redis, key)
    await hooks.set("acme", WebhookTarget("https://hooks.example/acme", "whsec-0123456789abcdef"))
    await redis.hset(keys.webhook("acme"), "url", "https://attacker.example/")
    with pytest.raises(DecryptError):
        await hooks.get("acme")
    await redis.hset(keys.webhook("other"), mapping={"url": "https://hooks.example/acme",
                                                      "secret": await redis.hget(keys.webhook("acme"), "secret")})
    with pytest.raises(DecryptError):
        await hooks.get("other")

    providers = ProviderStore(redis, key)
    await providers.set("acme", ProviderConfig(cloud=CloudCredentials("9001", "EAAG-token", "app-secret")), None)
    assert (await providers.get("acme")).cloud.access_token == "EAAG-token"
    await redis.hset(keys.provider("acme"), "graph_base_url", "https://attacker.example")
    with pytest.raises(DecryptError):
        await providers.get("acme")  # the token is never sent to the edited URL


# ---------------------------------------------------------------- rotation: killed half-way, run again

def v1_blob(key: MasterKey, plaintext: bytes) -> bytes:
    nonce, header = os.urandom(12), b"WAR1" + key.key_id
    return header + nonce + AESGCM(key.key).encrypt(nonce, plaintext, header)


async def _populate(data_dir: Path, old: MasterKey, n: int) -> dict[str, object]:
    """Every blob kind under `old` (some in the old WAR1 format) in the data dir and its embedded Redis."""
    server = EmbeddedRedis(data_dir / "redis")
    server.start()
    redis = connect(server.url)
    try:
        files, in_redis = FileAuthStore(data_dir, [old]), RedisAuthStore(redis, [old])
        for i in range(n):
            await files.save("acme", f"f{i}", f"file-{i}".encode())
            await in_redis.save("acme", f"r{i}", f"redis-{i}".encode())
        (data_dir / "sessions" / "acme" / "f0" / "auth.bin").write_bytes(v1_blob(old, b"file-0"))
        await redis.set(keys.auth_state("acme", "r0"), v1_blob(old, b"redis-0").hex())
        api = ApiKeyStore(redis, old)
        for i in range(n):
            await api.create("workspace", "acme", f"k{i}", f"api-secret-{i}")
        for i in range(5):
            await WebhookConfigStore(redis, old).set(f"ws{i}", WebhookTarget(f"https://h.example/{i}", f"whsec-{i:016d}"))
            await ProviderStore(redis, old).set(f"ws{i}", ProviderConfig(
                cloud=CloudCredentials(f"90{i}", f"token-{i}", f"app-{i}")), None)
    finally:
        await redis.aclose()
        server.stop()
    return {"n": n}


async def _check_all(data_dir: Path, readers: tuple[MasterKey, ...], n: int) -> None:
    server = EmbeddedRedis(data_dir / "redis")
    server.start()
    redis = connect(server.url)
    try:
        master, *previous = readers
        files, in_redis = FileAuthStore(data_dir, list(readers)), RedisAuthStore(redis, list(readers))
        for i in range(n):
            assert await files.load("acme", f"f{i}") == f"file-{i}".encode()
            assert await in_redis.load("acme", f"r{i}") == f"redis-{i}".encode()
            assert (await ApiKeyStore(redis, master, previous).get(f"k{i}")).secret == f"api-secret-{i}"
        for i in range(5):
            assert (await WebhookConfigStore(redis, master, previous).get(f"ws{i}")).secret == f"whsec-{i:016d}"
            cloud = (await ProviderStore(redis, master, previous).get(f"ws{i}")).cloud
            assert (cloud.access_token, cloud.app_secret) == (f"token-{i}", f"app-{i}")
        blobs = [p.read_bytes() for p in (data_dir / "sessions").glob("*/*/auth.bin")]
        auth_keys = [k async for k in redis.scan_iter(match=keys.auth_state("*", "*"))]
        assert len(auth_keys) == n, auth_keys  # the check below reads every Redis auth state
        blobs += [bytes.fromhex(await redis.get(k)) for k in auth_keys]
        if len(readers) == 1:
            assert all(b[:4] == b"WAR2" for b in blobs), "no old-format blob is left after a finished rotation"
    finally:
        await redis.aclose()
        server.stop()


def _rotate(data_dir: Path, kill_after: int | None = None) -> subprocess.CompletedProcess[str]:
    """`wa-ray rotate-key` in a process of its own; with `kill_after`, it SIGKILLs itself after that many
    blobs were rewritten (the hook is the test's, passed to the real command function)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_") and k not in ("REDIS_URL",)}
    if kill_after is None:
        cmd = [sys.executable, "-m", "wa_ray.entry.cli", "rotate-key", "--data-dir", str(data_dir)]
    else:
        code = textwrap.dedent(f"""
            import os, signal
            from wa_ray.entry.cli import cmd_rotate_key
            from wa_ray.config import Settings
            done = []
            def on_blob(name):
                done.append(name)
                if len(done) == {kill_after}:
                    os.kill(os.getpid(), signal.SIGKILL)
            cmd_rotate_key(Settings(data_dir={str(data_dir)!r}), None, on_blob)
        """)
        cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


async def test_rotation_killed_half_way_loses_nothing_and_finishes_when_run_again(tmp_path: Path) -> None:
    data_dir, n = tmp_path / "data", 12
    data_dir.mkdir()
    old = new_key()
    write_key_file(data_dir / "master.key", [old])
    await _populate(data_dir, old, n)

    killed = await asyncio.to_thread(_rotate, data_dir, 15)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    during = read_key_file(data_dir / "master.key")
    assert len(during) == 2 and during[1] == old, "the new key was made durable first, the old one kept"
    await _check_all(data_dir, during, n)  # half-way: every blob opens with the file's keys
    with pytest.raises((DecryptError, AttributeError)):  # a blob that does not open, or a key refused (None)
        await _check_all(data_dir, during[:1], n)  # and it really was half-way: some still need the old key

    again = await asyncio.to_thread(_rotate, data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    after = read_key_file(data_dir / "master.key")
    assert after == during[:1], "the interrupted rotation was finished (same new key), the old key retired"
    await _check_all(data_dir, after, n)  # the new key alone opens everything
    assert old.b64() not in (data_dir / "master.key").read_text()
    assert stat.S_IMODE((data_dir / "master.key").stat().st_mode) == 0o600


async def test_rotation_refuses_while_a_service_holds_the_data_dir(tmp_path: Path) -> None:
    write_key_file(tmp_path / "master.key", [new_key()])
    before = (tmp_path / "master.key").read_bytes()
    hold = hold_shared(tmp_path)  # what Service.start takes
    try:
        refused = await asyncio.to_thread(_rotate, tmp_path)
    finally:
        hold.close()
    assert refused.returncode != 0 and "stop it first" in refused.stderr
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()  # an embedded Redis on the data dir (a service or `wa-ray keys` running)
    try:
        refused = await asyncio.to_thread(_rotate, tmp_path)
    finally:
        server.stop()
    assert refused.returncode != 0 and "embedded Redis is running" in refused.stderr
    assert (tmp_path / "master.key").read_bytes() == before  # nothing was touched


# ---------------------------------------------------------------- the embedded Redis needs its password

def test_embedded_redis_refuses_clients_without_the_password(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        with pytest.raises(sync_redis.AuthenticationError):
            sync_redis.Redis(host="127.0.0.1", port=server.port).ping()
        with pytest.raises(sync_redis.AuthenticationError):
            sync_redis.Redis(host="127.0.0.1", port=server.port, password="guess").ping()
        assert sync_redis.Redis.from_url(server.url).ping()
        password = (tmp_path / "redis" / "password").read_text().strip()
        assert len(password) >= 32 and stat.S_IMODE((tmp_path / "redis" / "password").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "redis" / "redis.conf").stat().st_mode) == 0o600
        assert password.encode() not in Path(f"/proc/{server._proc.pid}/cmdline").read_bytes()
    with EmbeddedRedis(tmp_path / "redis") as again:  # the same password on the next start (AOF, CLIs)
        assert sync_redis.Redis.from_url(again.url).ping() and password in again.url


def test_the_live_service_redis_requires_auth(service) -> None:
    port = service.redis.port
    with pytest.raises(sync_redis.AuthenticationError):
        sync_redis.Redis(host="127.0.0.1", port=port).ping()


# ---------------------------------------------------------------- Chromium's sandbox

def test_sandbox_decision(tmp_path: Path) -> None:
    assert not chromium_sandbox_available(euid=0, proc=str(tmp_path))  # Chromium refuses to sandbox as root
    assert chromium_sandbox_available(euid=1000, proc=str(tmp_path))  # no switch says no
    switch = tmp_path / "proc/sys/kernel/unprivileged_userns_clone"
    switch.parent.mkdir(parents=True)
    switch.write_text("1\n")
    assert chromium_sandbox_available(euid=1000, proc=str(tmp_path))
    switch.write_text("0\n")
    assert not chromium_sandbox_available(euid=1000, proc=str(tmp_path))
    flags = ("--no-sandbox", "--disable-gpu")
    assert chromium_launch_flags(flags, sandbox=True) == ["--disable-gpu"]
    assert chromium_launch_flags(flags[1:], sandbox=False) == ["--no-sandbox", "--disable-gpu"]
    from wa_ray.runtime import CHROMIUM_BASE_FLAGS

    assert ("--no-sandbox" in CHROMIUM_BASE_FLAGS) == (not chromium_sandbox_available())
