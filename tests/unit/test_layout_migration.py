"""The one-time move of a Redis written in the old key layout to LAYOUT 2 (storage/layout_migration.py), on the
embedded Redis: every key under its new name with its value, TTL, stream groups and pending entries, nothing
left under an old name, twice in a row, and after a stop half-way."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from wa_ray.storage import campaigns, key_scan, keys, layout_migration
from wa_ray.storage.layout_migration import RULES, Action, LayoutError, ensure_layout, migrate

WS, SID, MID, CID, EP, KID = "acme", "s1", "msg_0001", "cmp_1", "ep1", "key1"
CONTACT = "15551230001@c.us"
TTL = 1000


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """DUMP replies are bytes: a client that does not decode them."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _stream(redis: aioredis.Redis, name: str, group: str, n: int, read: int) -> list[str]:
    """A stream of n entries with a group that has leased `read` of them (pending to consumer c1)."""
    await redis.xgroup_create(name, group, id="0", mkstream=True)
    ids = [await redis.xadd(name, {"m": str(i)}) for i in range(n)]
    if read:
        await redis.xreadgroup(group, "c1", {name: ">"}, count=read)
    return ids


async def _old_dataset(redis: aioredis.Redis) -> tuple[dict[str, str], dict[str, str]]:
    """An old-layout Redis as the previous version wrote it: (old name -> new name) of every key that keeps its
    value as it is, and the webhook attempt counters as they must read after the move."""
    moved: dict[str, str] = {}

    async def put(old: str, new: str, kind: str = "string", ttl: int | None = None) -> None:
        if kind == "string":
            await redis.set(old, f"v:{old}")
        elif kind == "hash":
            await redis.hset(old, mapping={"a": "1", "b": old})
        elif kind == "set":
            await redis.sadd(old, "x", "y")
        elif kind == "zset":
            await redis.zadd(old, {"x": 1.0, "y": 2.0})
        elif kind == "list":
            await redis.rpush(old, "x", "y")
        if ttl:
            await redis.expire(old, ttl)
        moved[old] = new

    # a message: record, history, its queue entry pending in the senders' group, the WhatsApp id, the key
    await redis.hset(f"wa:msg:{MID}", mapping={"message_id": MID, "workspace_id": WS, "session_id": SID,
                                                "status": "sending", "priority": "normal"})
    await redis.expire(f"wa:msg:{MID}", TTL)
    await redis.rpush(f"wa:msg:{MID}:history", '{"status":"queued"}', '{"status":"sending"}')
    await redis.expire(f"wa:msg:{MID}:history", TTL)
    moved[f"wa:msg:{MID}"] = keys.message(WS, MID)
    moved[f"wa:msg:{MID}:history"] = keys.message_history(WS, MID)
    await _stream(redis, f"wa:q:{WS}:{SID}:normal", keys.QUEUE_GROUP, 2, 1)
    moved[f"wa:q:{WS}:{SID}:normal"] = keys.queue(WS, SID, "normal")
    await _stream(redis, f"wa:cq:{WS}:bulk", keys.QUEUE_GROUP, 1, 0)
    moved[f"wa:cq:{WS}:bulk"] = keys.cloud_queue(WS, "bulk")
    await put(f"wa:wamsg:{WS}:true_1555@c.us_3EB0", keys.wa_message(WS, "true_1555@c.us_3EB0"), ttl=TTL)
    await put(f"wa:idem:{WS}:client:key:7", keys.idempotency(WS, "client:key:7"), ttl=TTL)  # `:` in the key
    await put(f"wa:seen:{WS}:wamid.X", keys.seen(WS, "wamid.X"), ttl=TTL)
    # events, the webhook outbox and an endpoint's lane
    events = await _stream(redis, f"wa:events:{WS}", keys.WEBHOOK_GROUP, 3, 2)
    moved[f"wa:events:{WS}"] = keys.events(WS)
    replay = await _stream(redis, f"wa:webhook-replay:{WS}", keys.WEBHOOK_GROUP, 1, 1)
    moved[f"wa:webhook-replay:{WS}"] = keys.webhook_replay(WS)
    lane = await _stream(redis, f"wa:webhook-queue:{WS}:{EP}", keys.WEBHOOK_GROUP, 2, 2)
    moved[f"wa:webhook-queue:{WS}:{EP}"] = keys.webhook_queue(WS, EP)
    await _stream(redis, f"wa:webhook-replay:{WS}:{EP}", keys.WEBHOOK_GROUP, 0, 0)
    moved[f"wa:webhook-replay:{WS}:{EP}"] = keys.endpoint_replay(WS, EP)
    await redis.hset(f"wa:webhook-attempts:{WS}", mapping={
        f"wa:events:{WS}|{events[0]}": "2", f"wa:webhook-replay:{WS}|{replay[0]}": "1",
        f"wa:webhook-queue:{WS}:{EP}|{lane[1]}": "3"})
    attempts = {f"{keys.events(WS)}|{events[0]}": "2", f"{keys.webhook_replay(WS)}|{replay[0]}": "1",
                f"{keys.webhook_queue(WS, EP)}|{lane[1]}": "3"}
    await put(f"wa:webhook:{WS}", keys.webhook(WS), "hash")
    await put(f"wa:webhook-endpoints:{WS}", keys.webhook_endpoints(WS), "hash")
    await put(f"wa:webhook-policy:{WS}", keys.webhook_policy(WS), "hash")
    await put(f"wa:dead-letters:{WS}", keys.dead_letters(WS), "list")
    await put(f"wa:dead-letters:{WS}:{EP}", keys.endpoint_dead_letters(WS, EP), "list")
    await put("wa:webhook-workspaces", keys.webhook_workspaces(), "set")
    await redis.sadd("wa:webhook-endpoint-lanes", f"{WS}/{EP}")
    moved["wa:webhook-endpoint-lanes"] = keys.webhook_endpoint_lanes()
    await put("wa:webhook-lanes-version", keys.webhook_lanes_version())
    await put("wa:webhook-lanes-seen", keys.webhook_lanes_seen())
    # sessions, including the workspace called `all` whose index was the global set
    await put(f"wa:session:{WS}:{SID}", keys.session(WS, SID), "hash")
    await put(f"wa:sessions:{WS}", keys.session_index(WS), "set")
    await redis.sadd("wa:sessions:all", f"{WS}/{SID}", "all/s9", "s9")
    await put("wa:session:all:s9", keys.session("all", "s9"), "hash")
    await put(f"wa:auth:{WS}:{SID}", keys.auth_state(WS, SID))
    await put(f"wa:pace:{WS}:{SID}", keys.pace_log(WS, SID), "zset", ttl=3600)
    await put(f"wa:paused:{WS}:{SID}", keys.session_paused(WS, SID), ttl=60)
    await put(f"wa:contacts:{WS}:{SID}", keys.contacts(WS, SID), "zset")
    await put(f"wa:stats:{WS}:20250101", keys.session_day_stats(WS, "20250101"), "hash", ttl=TTL)
    await put(f"wa:risk:{WS}:{SID}", keys.risk(WS, SID))
    await put(f"wa:repliers:{WS}:{SID}:20250101", keys.repliers(WS, SID, "20250101"), "set", ttl=TTL)
    # providers, media, policies
    await put(f"wa:provider:{WS}", keys.provider(WS), "hash")
    await put(f"wa:breaker:{WS}", keys.breaker(WS), "hash")
    await put(f"wa:media:{WS}:med_1", keys.media(WS, "med_1"), ttl=TTL)
    await put(f"wa:retention:{WS}", keys.retention(WS))
    await put(f"wa:plan-msgs:{WS}:20250101", keys.plan_messages(WS, "20250101"), ttl=TTL)
    # an API key: record, generation and revocation (global hashes), nonce, rate limit, stream leases
    await put(f"wa:apikey:{KID}", keys.api_key(KID), "hash")
    await redis.hset("wa:apikey-gen", mapping={KID: "3", "key2": "1"})
    await redis.hset("wa:apikey-revoked", mapping={"key2": "1700000000.5"})
    await put(f"wa:nonce:{KID}:n0:nce", keys.nonce(KID, "n0:nce"), ttl=600)
    await put(f"wa:rl:key:{KID}", keys.key_rate_limit(KID), ttl=60)
    await put(f"wa:streams:key:{KID}", keys.key_stream_slots(KID), "zset", ttl=60)
    await redis.zadd("wa:streams:token:jti1", {"lease": 1.0})
    # a campaign and a reply to it; a reply mark whose campaign is gone
    for kind, fn, type_ in (("cmp", campaigns.meta_key, "hash"), ("cmp-rcp", campaigns.recipients_key, "list"),
                            ("cmp-phones", campaigns.phones_key, "set"), ("cmp-asg", campaigns.assignment_key, "hash"),
                            ("cmp-open", campaigns.open_key, "set"), ("cmp-idx", campaigns.index_key, "hash")):
        await put(f"wa:{kind}:{WS}:{CID}", fn(WS, CID), type_, ttl=TTL)
    await put(f"wa:cmp-list:{WS}", campaigns.list_key(WS), "zset")
    await put(f"wa:cmp-n:{WS}", keys.campaign_counts(WS), "hash")
    await put(f"wa:cmp-contact:{WS}:{SID}:{CONTACT}", keys.campaign_contact(WS, SID, CONTACT), ttl=TTL)
    await put(f"wa:cmp-replied:{CID}:{CONTACT}", keys.campaign_replied(WS, CID, CONTACT), ttl=TTL)
    await redis.set("wa:cmp-replied:cmp_gone:x@c.us", "1", ex=TTL)
    # an orphan history: its record expired
    await redis.rpush("wa:msg:msg_gone:history", "{}")
    # metrics
    await put("wa:metrics:cursor", keys.metrics_cursor(), "hash")
    await put("wa:metrics:counters", keys.metrics_counters(), "hash")
    await put("wa:metrics:hist:send_seconds", keys.metrics_histogram("send_seconds"), "hash")
    await put("wa:metrics:qr-started", keys.metrics_qr_started(), "hash")
    await put("wa:stats:webhooks", keys.webhook_stats(), "hash")
    return moved, attempts


KEPT = {
    "wa:workspaces": "set", "wa:apikeys": "set", "wa:rl:token:jti1": "string", "wa:token-revoked:jti9": "string",
    "wa:audit": "stream", "wa:provider-workspaces": "set", "wa:meta-number:1234": "string",
    "wa:media-expiry": "zset", "wa:cmp-active": "set", "wa:service-alive": "string",
    f"wa:rl:numcheck:{WS}:{SID}": "string",
}


async def _kept(redis: aioredis.Redis) -> None:
    for name, kind in KEPT.items():
        if kind == "set":
            await redis.sadd(name, f"{WS}/x")
        elif kind == "zset":
            await redis.zadd(name, {f"{WS}/med_1": 1.0})
        elif kind == "stream":
            await redis.xadd(name, {"e": "{}"})
        else:
            await redis.set(name, "1")


async def _dumps(raw: aioredis.Redis, names: list[str]) -> dict[str, bytes | None]:
    return {name: await raw.dump(name) for name in names}


async def _all_names(redis: aioredis.Redis) -> set[str]:
    return {name async for name in redis.scan_iter(match="wa:*", count=1000)}


async def _assert_migrated(redis: aioredis.Redis, raw: aioredis.Redis, moved: dict[str, str],
                           dumps: dict[str, bytes | None], ttls: dict[str, int], attempts: dict[str, str]) -> None:
    # every key under its new name, byte for byte (a stream's DUMP holds its groups, consumers and pending
    # entries), with its TTL
    for old, new in moved.items():
        assert await raw.dump(new) == dumps[old], (old, new)
        assert await redis.ttl(new) == pytest.approx(ttls[old], abs=5), (old, new)
    # the streams, spelled out
    events = keys.events(WS)
    assert [g["name"] for g in await redis.xinfo_groups(events)] == [keys.WEBHOOK_GROUP]
    first_two = [entry_id for entry_id, _ in await redis.xrange(events, count=2)]
    assert [p["message_id"] for p in await redis.xpending_range(events, keys.WEBHOOK_GROUP, "-", "+", 10)] \
        == first_two
    assert (await redis.xpending(keys.queue(WS, SID, "normal"), keys.QUEUE_GROUP))["pending"] == 1
    assert (await redis.xpending(keys.webhook_queue(WS, EP), keys.WEBHOOK_GROUP))["pending"] == 2
    # the attempt counters name the streams' new names
    assert await redis.hgetall(keys.webhook_attempts(WS)) == attempts
    # the API keys' global hashes, one string per key id
    assert await redis.get(keys.api_key_generation(KID)) == "3"
    assert await redis.get(keys.api_key_generation("key2")) == "1"
    assert await redis.get(keys.api_key_revoked("key2")) == "1700000000.5"
    assert not await redis.exists(keys.api_key_revoked(KID))
    # the workspace called `all` has its own index now; the global set keeps `ws/sid` members only
    assert await redis.smembers(keys.session_index("all")) == {"s9"}
    assert await redis.smembers(keys.all_sessions()) == {f"{WS}/{SID}", "all/s9"}
    # kept globals as they were; nothing else outside the new layout
    names = await _all_names(redis)
    assert {n for n in names if not n.startswith(layout_migration.NEW)} == {*KEPT, keys.all_sessions(),
                                                                           keys.layout()}
    assert not any(layout_migration.is_old(n) for n in names)
    assert await redis.get(keys.layout()) == keys.LAYOUT
    assert not await redis.exists("wa:streams:token:jti1", "wa:msg:msg_gone:history",
                                  "wa:cmp-replied:cmp_gone:x@c.us", layout_migration.LOCK)


async def _prepared(redis: aioredis.Redis, raw: aioredis.Redis) -> tuple[
        dict[str, str], dict[str, str], dict[str, bytes | None], dict[str, int]]:
    moved, attempts = await _old_dataset(redis)
    await _kept(redis)
    dumps = await _dumps(raw, list(moved))
    ttls = {name: await redis.ttl(name) for name in moved}
    return moved, attempts, dumps, ttls


async def test_every_key_moves_with_value_ttl_groups_and_pending(redis: aioredis.Redis,
                                                                  raw: aioredis.Redis) -> None:
    moved, attempts, dumps, ttls = await _prepared(redis, raw)
    report = await ensure_layout(redis, cluster=False)
    assert report is not None and not report.conflicts and report.unknown == 0
    assert report.orphans == 2 and report.deleted == 1 and report.members_moved == 1
    assert report.fields_rewritten == 3 and report.fields_split == 3
    await _assert_migrated(redis, raw, moved, dumps, ttls, attempts)


async def test_a_second_run_changes_nothing(redis: aioredis.Redis, raw: aioredis.Redis) -> None:
    moved, attempts, dumps, ttls = await _prepared(redis, raw)
    await migrate(redis)
    names = sorted(await _all_names(redis))
    before = await _dumps(raw, names)
    again = await migrate(redis)  # the migration itself, not only the marker check
    assert (again.renamed, again.fields_rewritten, again.fields_split, again.orphans) == (0, 0, 0, 0)
    assert sorted(await _all_names(redis)) == names and await _dumps(raw, names) == before
    assert await ensure_layout(redis, cluster=False) is None  # the marker says it is done
    await _assert_migrated(redis, raw, moved, dumps, ttls, attempts)


async def test_a_migration_stopped_half_way_finishes_when_run_again(
        redis: aioredis.Redis, raw: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    moved, attempts, dumps, ttls = await _prepared(redis, raw)
    # part of it done by hand, as a run killed between its steps leaves it: a history moved before its record,
    # a campaign moved before its reply marks, one attempts field and one generation moved
    await redis.rename(f"wa:msg:{MID}:history", keys.message_history(WS, MID))
    await redis.rename(f"wa:cmp:{WS}:{CID}", campaigns.meta_key(WS, CID))
    [first] = [name for name in attempts if name.startswith(keys.events(WS))]
    entry_id = first.rpartition("|")[2]
    await redis.hset(f"wa:webhook-attempts:{WS}", first, "2")
    await redis.hdel(f"wa:webhook-attempts:{WS}", f"wa:events:{WS}|{entry_id}")
    await redis.set(keys.api_key_generation(KID), "3")
    await redis.hdel("wa:apikey-gen", KID)
    # and a run that stops after its second batch of names
    monkeypatch.setattr(key_scan, "SCAN_COUNT", 5)
    original, calls = layout_migration._Migration._batch, []

    async def stop_after_two(self: layout_migration._Migration, names: list[str]) -> None:
        calls.append(names)
        if len(calls) > 2:
            raise ConnectionError("killed")
        await original(self, names)

    monkeypatch.setattr(layout_migration._Migration, "_batch", stop_after_two)
    left_before, _ = await layout_migration.old_names(redis)
    with pytest.raises(ConnectionError):
        await ensure_layout(redis, cluster=False)
    left, _ = await layout_migration.old_names(redis)
    assert 0 < left < left_before  # it did stop half-way
    assert not await redis.exists(keys.layout()) and not await redis.exists(layout_migration.LOCK)
    monkeypatch.setattr(layout_migration._Migration, "_batch", original)
    report = await ensure_layout(redis, cluster=False)
    assert report is not None and not report.conflicts
    await _assert_migrated(redis, raw, moved, dumps, ttls, attempts)


async def test_an_existing_new_name_is_never_overwritten(redis: aioredis.Redis) -> None:
    await redis.set(f"wa:auth:{WS}:{SID}", "old")
    await redis.set(keys.auth_state(WS, SID), "new")
    await redis.set(f"wa:primary:{WS}", SID)
    with pytest.raises(LayoutError, match="conflicts"):
        await ensure_layout(redis, cluster=False)
    assert await redis.get(f"wa:auth:{WS}:{SID}") == "old" and await redis.get(keys.auth_state(WS, SID)) == "new"
    assert await redis.get(keys.primary(WS)) == SID  # the rest moved
    assert not await redis.exists(keys.layout())
    await redis.delete(f"wa:auth:{WS}:{SID}")  # the operator keeps one of the two
    assert await ensure_layout(redis, cluster=False) is not None
    assert await redis.get(keys.layout()) == keys.LAYOUT


async def test_an_empty_redis_just_gets_the_marker(redis: aioredis.Redis) -> None:
    report = await ensure_layout(redis, cluster=False)
    assert report is not None and report.renamed == 0
    assert await redis.get(keys.layout()) == keys.LAYOUT and await _all_names(redis) == {keys.layout()}


async def test_a_cluster_with_old_names_refuses_and_moves_nothing(redis: aioredis.Redis) -> None:
    await redis.set(f"wa:auth:{WS}:{SID}", "blob")
    await redis.set("wa:workspaces", "kept")  # kept names alone would not refuse
    with pytest.raises(LayoutError, match="Migrate on a single Redis first"):
        await ensure_layout(redis, cluster=True)
    assert await _all_names(redis) == {f"wa:auth:{WS}:{SID}", "wa:workspaces"}
    await redis.delete(f"wa:auth:{WS}:{SID}")
    assert await ensure_layout(redis, cluster=True) is not None
    assert await redis.get(keys.layout()) == keys.LAYOUT


async def test_refuses_while_the_service_runs_or_the_layout_is_unknown(redis: aioredis.Redis) -> None:
    await redis.set(f"wa:auth:{WS}:{SID}", "blob")
    with pytest.raises(LayoutError, match="actors still run"):
        await ensure_layout(redis, cluster=False, running=["session-supervisor"])
    assert await redis.exists(f"wa:auth:{WS}:{SID}")
    await redis.set(keys.layout(), "3")
    with pytest.raises(LayoutError, match="newer version"):
        await ensure_layout(redis, cluster=False)
    await redis.set(keys.layout(), keys.LAYOUT)
    assert await ensure_layout(redis, cluster=False, running=["session-supervisor"]) is None


async def test_a_second_migration_waits_for_the_lock(redis: aioredis.Redis) -> None:
    await redis.set(layout_migration.LOCK, "someone", ex=60)
    with pytest.raises(LayoutError, match="another key layout migration"):
        await migrate(redis)
    assert await redis.get(layout_migration.LOCK) == "someone"


def _sample(rule: layout_migration.Rule) -> tuple[str, tuple[str, ...]]:
    """A name of the row's old template, and its parts."""
    values = {"ws": "ws-a", "priority": "normal", "day": "20250101"}
    parts: list[str] = []

    def fill(m: re.Match[str]) -> str:
        parts.append(values.get(m[1], f"{m[1]}-1"))
        return parts[-1]

    return layout_migration._PART.sub(fill, rule.old), tuple(parts)


def test_every_row_parses_its_own_names_and_moves_them_under_a_tag() -> None:
    for rule in RULES:
        name, parts = _sample(rule)
        assert layout_migration.classify(name) == (rule, parts), rule.old
        if rule.action in (Action.KEEP, Action.ALL_SESSIONS):
            assert rule.new is not None and rule.new(*parts) == name, rule.old  # the same name in both
        elif rule.action in (Action.RENAME, Action.ATTEMPTS):
            new = layout_migration.new_name(name)
            assert new is not None and new.startswith(layout_migration.NEW), rule.old
    assert layout_migration.classify(keys.events("acme")) is None  # new names are never old ones


def test_every_key_function_is_accounted_for() -> None:
    """A key function added to storage/keys.py without a row here is a key an old Redis cannot have had, or a
    row missing: decide, and add it to the table or to this list."""
    not_in_the_old_layout = {"tag", "workspace_prefix", "workspace_of", "api_key_prefix",  # no key of their own
                             "token_stream_slots"}  # token leases: deleted (see RULES)
    targets = {rule.new.__name__ for rule in RULES if rule.new is not None}
    functions = {name for name, fn in inspect.getmembers(keys, inspect.isfunction)
                 if fn.__module__ == keys.__name__ and not name.startswith("_")}
    assert functions - targets - not_in_the_old_layout == set()


async def test_renames_each_row_of_the_table(redis: aioredis.Redis) -> None:
    expected = {}
    for rule in RULES:
        if rule.action is Action.RENAME:
            name, parts = _sample(rule)
            await redis.set(name, name)
            expected[name] = rule.new(*parts)  # type: ignore[misc]
    report = await migrate(redis)
    assert report.renamed == len(expected) and not report.conflicts
    for old, new in expected.items():
        assert await redis.get(new) == old and not await redis.exists(old)
