"""Access that must not outlive itself, attacked over real HTTP on loopback.

Open streams end when their access ends (token expiry, console sign-out, key revoked);
concurrent streams are capped per token and per key and closed streams give their slots
back; tokens spend their issuing key's rate budget; a re-created key id does not revive
its old tokens; a revoked bootstrap key stays revoked at the next start; a key bound to
client networks refuses (and audits) calls from elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import ray

from wa_ray.serve_app.tokens import TokenSigner
from wa_ray.crypto import MasterKey
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKeyStore, ensure_bootstrap
from wa_ray.storage.streamslots import Slot, StreamSlots
from wa_ray.signing import HmacAuth
from tests.caller_address import ALLOWED, CASES, judged

pytestmark = pytest.mark.asyncio

END_WITHIN_S = 5.0  # streams re-check access every 2 s
CONSOLE = {"X-WA-Console": "1"}


@dataclass
class Stream:
    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        async for line in self.response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())

    async def ended_within(self, seconds: float) -> float:
        """Seconds until the server ended the stream; fails if it is still open after `seconds`."""
        assert self.task is not None
        started = time.monotonic()
        await asyncio.wait_for(asyncio.shield(self.task), seconds)
        return time.monotonic() - started


@asynccontextmanager
async def stream(client: httpx.AsyncClient, path: str, **kw: object) -> AsyncIterator[Stream]:
    async with client.stream("GET", path, **kw) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, await response.aread()
        s = Stream(response)
        s.task = asyncio.create_task(s.pump())
        try:
            deadline = time.monotonic() + 10
            while "connected" not in s.comments:
                assert time.monotonic() < deadline and not s.task.done(), s.comments
                await asyncio.sleep(0.01)
            yield s
        finally:
            s.task.cancel()
            try:
                await s.task
            except (asyncio.CancelledError, httpx.HTTPError):
                pass


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _master(service) -> MasterKey:
    from wa_ray.master_keys import load_master_keys

    return load_master_keys(service.config)[0]


async def _stream_token(client: httpx.AsyncClient, ws: str) -> str:
    r = await client.post(f"/v1/workspaces/{ws}/stream-tokens")
    assert r.status_code == 201, r.text
    return r.json()["token"]


# --- streams end when their access ends ---------------------------------------------------------


async def test_stream_ends_after_its_token_expires(service, raw, make_key, key_store, unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    gen = (await key_store.get(key.key_id)).generation
    # the API's shortest token is 30 s; the service's own signer mints a 3 s one for the same key
    token, claims = TokenSigner(_master(service)).mint("stream", ws=unique_ws, role="workspace", kid=key.key_id,
                                                       ttl_s=3, gen=gen)
    async with stream(raw, f"/v1/workspaces/{unique_ws}/events?token={token}") as s:
        assert time.time() < claims.exp  # it was open before expiry
        await s.ended_within(claims.exp - time.time() + END_WITHIN_S)
        assert time.time() >= claims.exp
        assert "access ended: token_expired" in s.comments
    # and it cannot come back
    assert _error(await raw.get(f"/v1/workspaces/{unique_ws}/events?token={token}")) == (401, "token_expired")


async def test_console_stream_ends_after_sign_out(service, make_key, client_for, unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    minted = await client_for(key).post("/v1/console-tokens", json={"workspace_id": unique_ws})
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as browser:
        login = await browser.post("/console/session", json={"token": minted.json()["token"]}, headers=CONSOLE)
        assert login.status_code == 200, login.text
        async with stream(browser, f"/v1/workspaces/{unique_ws}/events") as s:
            await asyncio.sleep(0.5)
            assert not s.task.done()
            assert (await browser.delete("/console/session", headers=CONSOLE)).status_code == 204
            await s.ended_within(END_WITHIN_S)
            assert "access ended: signed_out" in s.comments


async def test_token_stream_ends_when_its_key_is_revoked(raw, make_key, client_for, key_store, unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    token = await _stream_token(client_for(key), unique_ws)
    async with stream(raw, f"/v1/workspaces/{unique_ws}/events?token={token}") as s:
        await asyncio.sleep(0.5)
        assert await key_store.revoke(key.key_id)
        await s.ended_within(END_WITHIN_S)
        assert "access ended: key_revoked" in s.comments


async def test_signed_stream_ends_when_its_key_is_revoked(make_key, client_for, key_store, unique_ws) -> None:
    key = await make_key("read", unique_ws, rate_per_s=0)
    async with stream(client_for(key), f"/v1/workspaces/{unique_ws}/events") as s:
        await asyncio.sleep(0.5)
        assert await key_store.revoke(key.key_id)
        await s.ended_within(END_WITHIN_S)
        assert "access ended: key_revoked" in s.comments


async def test_stream_ends_when_its_key_is_recreated_under_the_same_id(make_key, client_for, key_store,
                                                                       unique_ws) -> None:
    """Revoke and create again between two checks: the key exists, but it is not the one that signed."""
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    async with stream(client_for(key), f"/v1/workspaces/{unique_ws}/events") as s:
        assert await key_store.revoke(key.key_id)
        await key_store.create("workspace", unique_ws, key.key_id, key.secret, rate_per_s=0)  # same secret, even
        await s.ended_within(END_WITHIN_S)
        assert "access ended: key_revoked" in s.comments


# --- concurrent stream caps -----------------------------------------------------------------------


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_token_cap_and_closed_streams_free_their_slots(service, raw, make_key, client_for, live_redis,
                                                             unique_ws) -> None:
    cap = service.config.streams_per_token
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    token = await _stream_token(client_for(key), unique_ws)
    path = f"/v1/workspaces/{unique_ws}/events?token={token}"
    jti = TokenSigner(_master(service)).verify(token, "stream").jti
    async with asyncio.timeout(60):
        streams = [stream(raw, path) for _ in range(cap)]
        for s in streams:
            await s.__aenter__()
        try:
            over = await raw.get(path)
            assert _error(over) == (429, "too_many_streams")
            assert over.json()["error"]["details"] == {"per": "token", "limit": cap}
            assert int(over.headers["retry-after"]) >= 1
            assert await StreamSlots(live_redis).count(Slot(key.key_id, token_id=jti)) == cap
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)
        await _until(lambda: _count_is(live_redis, Slot(key.key_id, token_id=jti), 0))

        # 50 open/close cycles (half of them cut before the first event is read) leak no slot
        for i in range(50):
            async with raw.stream("GET", path) as response:
                assert response.status_code == 200, await response.aread()
                if i % 2:
                    async for line in response.aiter_lines():
                        if line.startswith(":"):
                            break
        await _until(lambda: _count_is(live_redis, Slot(key.key_id, token_id=jti), 0))
        streams = [stream(raw, path) for _ in range(cap)]
        for s in streams:
            await s.__aenter__()  # the whole cap is there again
        for s in streams:
            await s.__aexit__(None, None, None)


async def _count_is(live_redis, slot: Slot, n: int) -> bool:
    return await StreamSlots(live_redis).count(slot) == n


async def test_key_cap_counts_the_key_and_all_its_tokens(service, raw, make_key, client_for, key_store,
                                                         live_redis, unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0, max_streams=3)
    client = client_for(key)
    path = f"/v1/workspaces/{unique_ws}/events"
    token = await _stream_token(client, unique_ws)
    async with stream(client, path), stream(client, path), stream(raw, f"{path}?token={token}"):
        over = await client.get(path)
        assert _error(over) == (429, "too_many_streams")
        assert over.json()["error"]["details"] == {"per": "key", "limit": 3}
        # a fresh token of the same key has its own token slots, but not the key's
        other = await _stream_token(client, unique_ws)
        assert _error(await raw.get(f"{path}?token={other}")) == (429, "too_many_streams")
        # another key of the same workspace is not affected
        neighbour = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
        async with stream(neighbour, path):
            pass
    await _until(lambda: _count_is(live_redis, Slot(key.key_id), 0))
    async with stream(client, path):
        pass


async def test_default_key_cap(service, make_key, client_for, live_redis, unique_ws) -> None:
    cap = service.config.streams_per_key
    key = await make_key("read", unique_ws, rate_per_s=0)
    path = f"/v1/workspaces/{unique_ws}/events?heartbeat=60"
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key.key_id, key.secret), timeout=30,
                                 limits=httpx.Limits(max_connections=cap + 10)) as client:
        streams = [stream(client, path) for _ in range(cap)]
        try:
            await asyncio.gather(*(s.__aenter__() for s in streams))
            over = await client.get(path)
            assert _error(over) == (429, "too_many_streams")
            assert over.json()["error"]["details"] == {"per": "key", "limit": cap}
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)
    await _until(lambda: _count_is(live_redis, Slot(key.key_id), 0), timeout=20)


# --- tokens spend their key's rate budget -----------------------------------------------------------


async def test_tokens_spend_their_issuing_keys_rate_budget(raw, make_key, client_for, unique_ws) -> None:
    rate, burst = 1.0, 2
    key = await make_key("workspace", unique_ws, rate_per_s=rate, burst=burst)
    client = client_for(key)

    async def minted() -> str:
        while True:  # minting is a signed call: it spends the same budget
            r = await client.post("/v1/console-tokens", json={"workspace_id": unique_ws})
            if r.status_code == 201:
                return r.json()["token"]
            assert _error(r) == (429, "rate_limited")
            await asyncio.sleep(float(r.headers["retry-after"]))

    tokens = [await minted() for _ in range(3)]
    await asyncio.sleep(burst / rate + 0.5)  # a full bucket: the most the caller can have
    accepted = limited = 0
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        calls = [client.get(f"/v1/workspaces/{unique_ws}/sessions")]
        calls += [raw.get("/console/session", headers={"Cookie": f"wa_console={t}"}) for t in tokens]
        for r in await asyncio.gather(*calls):
            if r.status_code == 200:
                accepted += 1
            else:
                assert _error(r) == (429, "rate_limited")
                limited += 1
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    # key and three tokens together: within one key's budget (one request of slack for the clock)
    assert accepted <= burst + rate * elapsed + 1, (accepted, limited, elapsed)
    assert accepted >= 2 and limited > 10, (accepted, limited)


# --- generations: a re-created key id is a new key ---------------------------------------------------


async def test_recreated_key_id_does_not_revive_old_tokens(raw, make_key, client_for, key_store,
                                                           unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0)
    old = client_for(key)
    stream_token = await _stream_token(old, unique_ws)
    console_token = (await old.post("/v1/console-tokens", json={"workspace_id": unique_ws})).json()["token"]
    first = (await key_store.get(key.key_id)).generation
    assert await key_store.revoke(key.key_id)
    again = await key_store.create("workspace", unique_ws, key.key_id, key.secret, rate_per_s=0)
    assert again.generation > first
    assert (await key_store.get(key.key_id)).generation == again.generation

    events = f"/v1/workspaces/{unique_ws}/events"
    assert _error(await raw.get(f"{events}?token={stream_token}")) == (403, "bad_token")
    login = await raw.post("/console/session", json={"token": console_token}, headers=CONSOLE)
    assert _error(login) == (403, "bad_token")
    raw.cookies.clear()
    # the new key and its own tokens work
    assert (await old.get(f"/v1/workspaces/{unique_ws}/sessions")).status_code == 200
    async with stream(raw, f"{events}?token={await _stream_token(old, unique_ws)}"):
        pass


async def test_generation_survives_revocation_in_the_store(redis) -> None:
    store = ApiKeyStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    gens = []
    for _ in range(3):
        gens.append((await store.create("read", None, "k1")).generation)
        assert await store.revoke("k1")
    assert gens == sorted(set(gens)) and len(gens) == 3
    assert await store.get("k1") is None


# --- the bootstrap key stays revoked ------------------------------------------------------------------


async def test_revoked_bootstrap_key_is_not_recreated_at_start(redis) -> None:
    store = ApiKeyStore(redis, MasterKey.from_b64(MasterKey.generate_b64()))
    assert await ensure_bootstrap(store, "boot", "s" * 40) == "created"
    gen = (await store.get("boot")).generation
    assert await ensure_bootstrap(store, "boot", "s" * 40) == "kept"  # a plain restart: tokens survive
    assert (await store.get("boot")).generation == gen
    assert await ensure_bootstrap(store, "boot", "t" * 40) == "replaced"  # the environment rotated the secret
    assert (await store.get("boot")).generation > gen

    assert await store.revoke("boot")
    for _ in range(2):  # every later start
        assert await ensure_bootstrap(store, "boot", "t" * 40) == "revoked"
        assert await store.get("boot") is None

    assert await store.reinstate("boot")  # the operator's explicit word
    assert await ensure_bootstrap(store, "boot", "t" * 40) == "created"
    assert await store.get("boot") is not None
    assert not await store.reinstate("boot")  # nothing left to reinstate


async def test_service_start_keeps_a_revoked_bootstrap_key_revoked(service, raw, key_store, unique_ws) -> None:
    """The very function `Service.start` runs, against the live service's Redis, with a throwaway id."""
    from wa_ray.entry.wiring import bootstrap_admin_key

    key_id, secret = f"boot-{unique_ws}", "b" * 43
    assert ray.get(bootstrap_admin_key.remote(service.config, key_id, secret)) == "created"
    path = f"/v1/workspaces/{unique_ws}/sessions"
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key_id, secret), timeout=30) as admin:
        assert (await admin.get(path)).status_code == 200
        assert ray.get(bootstrap_admin_key.remote(service.config, key_id, secret)) == "kept"
        assert await key_store.revoke(key_id)
        assert ray.get(bootstrap_admin_key.remote(service.config, key_id, secret)) == "revoked"
        assert _error(await admin.get(path)) == (403, "bad_signature")


# --- client networks -------------------------------------------------------------------------------


async def _audit_entries(live_redis, key_id: str) -> list[dict]:
    out = []
    for _, fields in await live_redis.xrevrange(keys.audit(), count=500):
        entry = orjson.loads(fields["e"])
        if entry.get("who") == f"key:{key_id}":
            out.append(entry)
    return out


async def test_key_bound_to_other_networks_is_refused_and_audited(make_key, client_for, live_redis,
                                                                  unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0, allowed_cidrs=["10.0.0.0/8", "192.168.0.0/16"])
    client = client_for(key)
    path = f"/v1/workspaces/{unique_ws}/sessions"
    for r in (await client.get(path), await client.post(path, json={"session_id": "x1"}),
              await client.post(f"/v1/workspaces/{unique_ws}/stream-tokens"),
              await client.get(f"/v1/workspaces/{unique_ws}/events")):
        assert _error(r) == (403, "ip_not_allowed")
        assert "10.0.0.0" not in r.text  # the key's networks are not told to the caller
    entries = await _audit_entries(live_redis, key.key_id)
    assert len(entries) == 4, entries
    assert {e["method"] for e in entries} == {"GET", "POST"}
    for e in entries:
        assert e["status"] == 403 and e["outcome"] == "denied" and e["reason"] == "ip_not_allowed"
        assert e["client"] in ("127.0.0.1", "::1")


async def test_key_bound_to_loopback_works_from_loopback(make_key, client_for, unique_ws) -> None:
    key = await make_key("workspace", unique_ws, rate_per_s=0, allowed_cidrs=["127.0.0.0/8", "::1/128"])
    client = client_for(key)
    assert (await client.get(f"/v1/workspaces/{unique_ws}/sessions")).status_code == 200
    async with stream(client, f"/v1/workspaces/{unique_ws}/events"):
        pass


async def test_the_allow_list_judges_the_callers_own_address(make_key, service, unique_ws) -> None:
    """Behind Serve's proxy; the same cases behind HAProxy: tests/integration/test_haproxy_ingress.py."""
    key = await make_key("workspace", unique_ws, rate_per_s=0, allowed_cidrs=[ALLOWED])
    seen = await judged(service.base_url, f"/v1/workspaces/{unique_ws}/sessions", key.key_id, key.secret)
    assert seen == [(source, forwarded, status) for source, forwarded, status in CASES]


@pytest.mark.parametrize("cidrs", [["10.0.0.0/33"], ["10.0.0.1/8"], ["not-a-network"], [""], ["10.0.0.0/8", "::1/129"],
                                   ["10.0.0.0/8; DROP"], [f"10.{i}.0.0/16" for i in range(33)]])
async def test_malformed_cidrs_are_refused_at_creation(key_store, cidrs) -> None:
    with pytest.raises(ValueError) as info:
        await key_store.create("read", None, "t-cidr-bad", allowed_cidrs=cidrs)
    assert "DROP" not in str(info.value) and "not-a-network" not in str(info.value)
    assert await key_store.get("t-cidr-bad") is None


async def test_keys_cli_allow_cidr(service, unique_ws) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "WA_REDIS_URL", "WA_MASTER_KEY")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "wa_ray.entry.cli", "keys", "--data-dir", str(service.settings.data_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    bad = await asyncio.to_thread(cli, "create", "--role", "read", "--allow-cidr", "10.0.0.0/33")
    assert bad.returncode == 2 and "allowed CIDR" in bad.stderr
    made = await asyncio.to_thread(cli, "create", "--role", "workspace", "--workspace", unique_ws, "--rate", "0",
                                   "--allow-cidr", "10.0.0.0/8", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["allowed_cidrs"] == ["10.0.0.0/8"]
    async with httpx.AsyncClient(base_url=service.base_url, auth=HmacAuth(key["key_id"], key["secret"])) as client:
        assert _error(await client.get(f"/v1/workspaces/{unique_ws}/sessions")) == (403, "ip_not_allowed")
