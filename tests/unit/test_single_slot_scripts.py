"""Every Lua script and every MULTI of the stores split for Redis Cluster (issue 16) stays in one hash slot.

`slot_guard` records the keys of each script call (EVAL/EVALSHA, alone or queued on a pipeline) and of each
MULTI/EXEC (the keys of its commands, from the server's COMMAND GETKEYS) sent by the stores, on the embedded
Redis; every recorded call must hash to one slot (`redis.crc.key_slot`). The same scenarios then run against
a three-master Redis Cluster (tests/redis_cluster.py; skipped without a redis-server binary), with their
workspaces on different masters, where a cross-slot call fails outright.

The behaviour the split keeps is checked alongside: one owner per Cloud API number under racing claims, a
claim left in flight lapsing by itself, a settled but stale claim taken over, the global indexes read as
hints.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.crypto import MasterKey
from wa_ray.storage import keys
from wa_ray.storage.apikeys import ApiKeyStore, KeyExists, KeyRevoked, ensure_bootstrap
from wa_ray.storage.ban_risk import BanRiskStore
from wa_ray.storage.campaigns import ACTIVE, RUNNING, Campaign, CampaignStore, Recipient
from wa_ray.storage.media import MediaStore
from wa_ray.storage.media_pending import PendingMediaStore
from wa_ray.storage.numbers import NumberStore
from wa_ray.storage.plan_limits import PlanLimits, PlanLimitStore
from wa_ray.storage.providers import CloudCredentials, NumberTaken, ProviderConfig, ProviderStore, verify_digest
from wa_ray.storage.registry import SessionRegistry
from wa_ray.storage.webhook_endpoints import MAX_ENDPOINTS, EndpointLimit, WebhookEndpointStore
from wa_ray.storage.webhooks import WebhookConfigStore, WebhookTarget

MASTER = MasterKey(os.urandom(32))
# On an even three-master split (slots 0-5460 / 5461-10922 / 10923-16383): t2 -> 4748, ws-a -> 7741, acme -> 11304.
WS_A, WS_B, WS_C = "t2", "ws-a", "acme"


# ------------------------------------------------------------------ the guard
@dataclass
class Call:
    kind: str  # "script" or "multi"
    names: list[str]

    def slots(self) -> set[int]:
        return {key_slot(name.encode()) for name in self.names}


@dataclass
class SlotGuard:
    probe: aioredis.Redis
    calls: list[Call] = field(default_factory=list)

    async def keys_of(self, args: tuple[Any, ...]) -> list[str]:
        name = str(args[0]).upper()
        if name in ("EVAL", "EVALSHA"):
            return [str(k) for k in args[3:3 + int(args[2])]]
        try:
            return [str(k) for k in await self.probe.command_getkeys(*args)]
        except ResponseError:  # a command without keys
            return []

    def crossing(self) -> list[Call]:
        return [c for c in self.calls if len(c.slots()) > 1]

    def count(self, kind: str) -> int:
        return sum(c.kind == kind for c in self.calls)


@pytest_asyncio.fixture
async def slot_guard(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SlotGuard]:
    guard = SlotGuard(aioredis.Redis.from_url(redis_url, decode_responses=True))
    execute_command, transaction, pipeline = (aioredis.Redis.execute_command, Pipeline._execute_transaction,
                                              Pipeline._execute_pipeline)

    async def on_command(self: aioredis.Redis, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() in ("EVAL", "EVALSHA"):
            guard.calls.append(Call("script", await guard.keys_of(args)))
        return await execute_command(self, *args, **options)

    async def on_transaction(self: Pipeline, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        names = [name for args, _ in commands for name in await guard.keys_of(args)]
        guard.calls.append(Call("multi", names))
        return await transaction(self, connection, commands, raise_on_error)

    async def on_pipeline(self: Pipeline, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        for args, _ in commands:  # a script queued on a plain pipeline is still one call
            if str(args[0]).upper() in ("EVAL", "EVALSHA"):
                guard.calls.append(Call("script", await guard.keys_of(args)))
        return await pipeline(self, connection, commands, raise_on_error)

    monkeypatch.setattr(aioredis.Redis, "execute_command", on_command)
    monkeypatch.setattr(Pipeline, "_execute_transaction", on_transaction)
    monkeypatch.setattr(Pipeline, "_execute_pipeline", on_pipeline)
    yield guard
    await guard.probe.aclose()


# ------------------------------------------------------------------ scenarios (a client of either kind)
def _cloud(number: str, secret: str = "app-secret") -> ProviderConfig:
    return ProviderConfig(priority="meta", cloud=CloudCredentials(number, "token-" + number, secret))


async def _providers(redis: Any, tmp: Path) -> None:
    store = ProviderStore(redis, MASTER)
    await store.set(WS_A, _cloud("111"), "verify-one")
    assert await store.workspace_of_number("111") == WS_A
    assert await redis.pttl(keys.meta_number("111")) == -1, "a settled claim does not expire"
    assert await store.workspace_of_verify_token("verify-one") == WS_A
    with pytest.raises(NumberTaken):
        await store.set(WS_B, _cloud("111"), "verify-one")
    assert await redis.hgetall(keys.provider(WS_B)) == {}, "a refused claim writes nothing"
    assert WS_B not in await store.cloud_workspaces()
    await store.set(WS_B, _cloud("222"), "verify-one")  # one Meta app, two numbers: a shared verify token
    await store.breaker_failure(WS_A, 1, "down")
    await store.set(WS_A, _cloud("333"), "verify-two")  # moves: the old number and token are released
    assert await redis.get(keys.meta_number("111")) is None and await redis.get(keys.meta_number("333")) == WS_A
    assert await store.breaker(WS_A) == {}, "a new config starts with a closed breaker"
    assert await store.workspace_of_verify_token("verify-one") == WS_B
    await store.set(WS_A, ProviderConfig(), None)  # back to WhatsApp Web only
    assert await redis.get(keys.meta_number("333")) is None and WS_A not in await store.cloud_workspaces()
    assert await store.workspace_of_verify_token("verify-two") is None
    assert {WS_A, WS_B} <= await store.workspaces()
    await store.breaker_failure(WS_B, 5, "x")
    await store.breaker_success(WS_B)
    await store.set(WS_C, _cloud("111"), None)  # a released number is free again
    assert (await store.get(WS_C)).cloud.phone_number_id == "111"  # type: ignore[union-attr]


async def _api_keys(redis: Any, tmp: Path) -> None:
    store = ApiKeyStore(redis, MASTER)
    made = await store.create("workspace", WS_A, "k1")
    again = await store.create("workspace", WS_A, "k1")
    assert (made.generation, again.generation) == (1, 2)
    with pytest.raises(KeyExists):
        await store.create("workspace", WS_A, "k1", replace=False)
    assert await store.revoke("k1") and await store.is_revoked("k1") and await store.get("k1") is None
    assert "k1" not in await redis.smembers(keys.api_key_index())
    with pytest.raises(KeyRevoked):
        await store.create("admin", None, "k1", unless_revoked=True)
    assert await ensure_bootstrap(store, "k1", "s" * 32) == "revoked"
    assert await store.reinstate("k1") and not await store.is_revoked("k1")
    assert await ensure_bootstrap(store, "k1", "s" * 32) == "created"
    assert (await store.get("k1")).generation == 3  # type: ignore[union-attr]
    assert [k.key_id for k in await store.list()] == ["k1"]


async def _webhooks(redis: Any, tmp: Path) -> None:
    await WebhookConfigStore(redis, MASTER).set(WS_A, WebhookTarget("http://127.0.0.1:9/", "s" * 16))
    assert WS_A in await redis.smembers(keys.webhook_workspaces())
    store = WebhookEndpointStore(redis, MASTER)
    made = [await store.create(WS_B, "http://127.0.0.1:9/", "s" * 16, ["*"], {}, None, "")
            for _ in range(MAX_ENDPOINTS)]
    with pytest.raises(EndpointLimit):
        await store.create(WS_B, "http://127.0.0.1:9/", "s" * 16, ["*"], {}, None, "")
    lanes = await redis.smembers(keys.webhook_endpoint_lanes())
    assert lanes == {f"{WS_B}/{e.id}" for e in made}, "the refused one's lane is gone again"
    assert await store.update(WS_B, made[0].id, {"description": "d"}) is not None
    assert await store.delete(WS_B, made[0].id)
    assert f"{WS_B}/{made[0].id}" not in await redis.smembers(keys.webhook_endpoint_lanes())
    assert not await redis.exists(keys.webhook_queue(WS_B, made[0].id))


async def _campaigns(redis: Any, tmp: Path) -> None:
    store = CampaignStore(redis)
    await store.create(Campaign("c1", WS_A, "n", "draft", time.time(), "text", {"text": "hi"}, None, None, "bulk"))
    assert (await store.add_recipients(WS_A, "c1", [Recipient("15550000001")]))[0] == 1
    assert await store.set_status(WS_A, "c1", ("draft",), RUNNING) == (True, "draft")
    assert f"{WS_A}/c1" in await redis.smembers(ACTIVE)
    await store.advance(WS_A, "c1", 1)
    await store.delete(WS_A, "c1")
    assert f"{WS_A}/c1" not in await redis.smembers(ACTIVE) and await store.get(WS_A, "c1") is None


async def _registry_and_numbers(redis: Any, tmp: Path) -> None:
    registry = SessionRegistry(redis)
    await registry.register(WS_A, "s1", "node")
    await registry.set_state(WS_A, "s1", "connected")
    await registry.end_stretch_at(WS_A, "s1", time.time())
    assert (WS_A, "s1") in await registry.all()
    numbers = NumberStore(redis)
    assert (await numbers.reserve(WS_A, "s2", 5)).ok
    await numbers.set_primary(WS_A, "s1")
    assert await numbers.clear_primary(WS_A, "s1")
    await registry.remove(WS_A, "s1")
    assert (WS_A, "s1") not in await registry.all() and await registry.get(WS_A, "s1") is None
    limits = PlanLimitStore(redis)
    await limits.set(WS_B, PlanLimits(None, 10))
    assert (await limits.charge_messages(WS_B, 3)).ok
    await limits.refund_messages(WS_B, 1)
    await redis.set(keys.session_paused(WS_C, "s1"), "ban_risk|1")
    assert await BanRiskStore(redis).resume(WS_C, "s1", 60) == "ban_risk"


async def _media(redis: Any, tmp: Path) -> None:
    store = MediaStore(redis, tmp / "media", [("key-0001", os.urandom(32))], retention_s=3600)
    info = await store.put_bytes(WS_A, b"hello", mimetype="text/plain")
    assert await store.info(WS_A, info.media_id) is not None
    assert await redis.zscore(keys.media_expiry(), f"{WS_A}/{info.media_id}") == info.expires_at
    pending = PendingMediaStore(redis)
    token = await pending.claim(WS_B, "m1", 5)
    assert token and await pending.held(WS_B, "m1")
    await pending.release(WS_B, "m1", token)
    assert not await pending.held(WS_B, "m1")


Scenario = Callable[[Any, Path], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {"providers": _providers, "api_keys": _api_keys, "webhooks": _webhooks,
                                  "campaigns": _campaigns, "registry_and_numbers": _registry_and_numbers,
                                  "media": _media}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_each_script_and_multi_is_one_slot(name: str, redis: aioredis.Redis, slot_guard: SlotGuard,
                                                 tmp_path: Path) -> None:
    await SCENARIOS[name](redis, tmp_path)
    assert slot_guard.calls, "the guard saw nothing: it no longer hooks the client"
    assert not slot_guard.crossing(), [(c.kind, c.names) for c in slot_guard.crossing()]


async def test_the_guard_sees_a_cross_slot_call(redis: aioredis.Redis, slot_guard: SlotGuard) -> None:
    """The guard itself: a MULTI and a script over two workspaces are reported."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.provider(WS_A))
        pipe.get(keys.provider(WS_B))
        await pipe.execute()
    await redis.eval("return 1", 2, keys.breaker(WS_A), keys.breaker(WS_B))
    assert [c.kind for c in slot_guard.crossing()] == ["multi", "script"]


# ------------------------------------------------------------------ what the provider split keeps
async def test_racing_claims_give_a_number_to_one_workspace(redis: aioredis.Redis) -> None:
    stores = [ProviderStore(redis, MASTER) for _ in range(6)]
    tenants = [f"r{i}" for i in range(6)]
    outcomes = await asyncio.gather(*(s.set(ws, _cloud("777"), None) for s, ws in zip(stores, tenants, strict=True)),
                                    return_exceptions=True)
    winners = [ws for ws, o in zip(tenants, outcomes, strict=True) if o is None]
    assert len(winners) == 1 and sum(isinstance(o, NumberTaken) for o in outcomes) == 5, outcomes
    assert await redis.get(keys.meta_number("777")) == winners[0]
    assert await redis.smembers(keys.cloud_workspaces()) == set(winners)


async def test_a_claim_left_in_flight_lapses_by_itself(redis: aioredis.Redis) -> None:
    """A crash between the claim and the config leaves a claim with an expiry: it holds the number off from
    others only until then."""
    await redis.set(keys.meta_number("888"), "crashed", px=300)
    store = ProviderStore(redis, MASTER)
    with pytest.raises(NumberTaken):
        await store.set(WS_A, _cloud("888"), None)
    await asyncio.sleep(0.4)
    await store.set(WS_A, _cloud("888"), None)
    assert await redis.get(keys.meta_number("888")) == WS_A and await redis.pttl(keys.meta_number("888")) == -1


async def test_a_settled_claim_its_owner_no_longer_names_is_taken_over(redis: aioredis.Redis) -> None:
    """A crash between a config write and its release leaves the old number claimed: a workspace wanting it
    takes it over once the owner's config names another number; one the owner still names stays taken."""
    store = ProviderStore(redis, MASTER)
    await store.set(WS_B, _cloud("999"), None)
    with pytest.raises(NumberTaken):
        await store.set(WS_A, _cloud("999"), None)
    await redis.hset(keys.provider(WS_B), "phone_number_id", "998")  # as if B moved and crashed before the release
    await store.set(WS_A, _cloud("999"), None)
    assert await redis.get(keys.meta_number("999")) == WS_A


async def test_a_release_deletes_only_a_mapping_of_its_own(redis: aioredis.Redis) -> None:
    store = ProviderStore(redis, MASTER)
    await store.set(WS_B, _cloud("555"), None)
    await store.set(WS_A, _cloud("556"), None)
    await redis.hset(keys.provider(WS_A), "phone_number_id", "555")  # a stale record naming B's number
    await store.set(WS_A, ProviderConfig(), None)
    assert await redis.get(keys.meta_number("555")) == WS_B


async def test_a_verifier_counts_only_while_its_config_holds_the_token(redis: aioredis.Redis) -> None:
    store = ProviderStore(redis, MASTER)
    await redis.sadd(keys.meta_verifiers(verify_digest("tok")), "ghost")  # a member left by a crash: its config never held the token
    assert await store.workspace_of_verify_token("tok") is None
    await store.set(WS_A, _cloud("444"), "tok")
    assert await store.workspace_of_verify_token("tok") == WS_A


async def test_a_retried_config_write_settles_its_claim(redis: aioredis.Redis, monkeypatch) -> None:
    """A concurrent writer changes the config between the read and the write: the next attempt writes it."""
    store = ProviderStore(redis, MASTER)
    real = store._set_config
    raced = []

    async def racing(keys: list[str], args: list[str]) -> str:
        if not raced:
            raced.append(1)
            await redis.hset(keys[0], mapping={"phone_number_id": "", "verify_digest": "x"})
        return await real(keys=keys, args=args)

    monkeypatch.setattr(store, "_set_config", racing)
    await store.set(WS_A, _cloud("666"), None)
    assert raced and await redis.get(keys.meta_number("666")) == WS_A
    assert await redis.pttl(keys.meta_number("666")) == -1


# ------------------------------------------------------------------ on a real Redis Cluster
async def test_the_workspaces_sit_on_three_masters(cluster_redis: RedisCluster) -> None:  # noqa: F811
    assert len({cluster_redis.get_node_from_key(keys.provider(ws)).name for ws in (WS_A, WS_B, WS_C)}) == 3


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_each_scenario_runs_on_a_redis_cluster(name: str, cluster_redis: RedisCluster,  # noqa: F811
                                                     tmp_path: Path) -> None:
    assert isinstance(cluster_redis, RedisCluster)
    await SCENARIOS[name](cluster_redis, tmp_path)


async def test_racing_claims_on_a_redis_cluster(cluster_redis: RedisCluster) -> None:  # noqa: F811
    await test_racing_claims_give_a_number_to_one_workspace(cluster_redis)  # type: ignore[arg-type]
