"""The purge in the cluster layout (storage/workspace_purge.py): a workspace's keys are exactly those under
`wa:{ws}:`, so the purge takes all of them and nothing of another workspace, not of one whose id extends
its id, not of one whose keys share its hash slot; each of its API keys goes in one MULTI on the key's own
slot, keeping only the generation and the revocation mark; global members and claims naming it go."""

from __future__ import annotations

import pytest

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.storage import campaigns, keys
from wa_ray.storage.slots import slot_of
from wa_ray.storage.workspace_purge import WorkspacePurge, check_layout, workspace_pattern

pytestmark = pytest.mark.asyncio

WS, LONGER, SAME_SLOT = "ahy", "ahyx", "iaa"  # `ahy` and `iaa` hash to the same slot (358)


@pytest.fixture(params=["redis", "cluster_redis"])
def store(request: pytest.FixtureRequest):
    """The test's Redis: one server, then a cluster."""
    return request.getfixturevalue(request.param)


def _key_id(ws: str) -> str:
    return f"key-{ws}"


async def _furnish(redis, ws: str) -> None:
    kid = _key_id(ws)
    await redis.sadd(keys.workspaces(), ws)
    await redis.sadd(keys.all_sessions(), f"{ws}/s1")
    await redis.hset(keys.session(ws, "s1"), "state", "qr_required")
    await redis.xadd(keys.events(ws), {"e": "{}"})
    await redis.hset(keys.message(ws, "msg_1"), mapping={"workspace_id": ws, "to": "15550001"})
    await redis.rpush(keys.message_history(ws, "msg_1"), "{}")
    await redis.hset(keys.message(ws, "msg_2"), mapping={"workspace_id": ws, "to": "15550002"})
    await redis.rpush(keys.message_history(ws, "msg_3"), "{}")  # its record expired first: one more key
    await redis.zadd(campaigns.list_key(ws), {"cmp_1": 1})
    await redis.hset(campaigns.meta_key(ws, "cmp_1"), "status", "running")
    await redis.set(keys.campaign_replied(ws, "cmp_1", "15550001@c.us"), 1)
    await redis.sadd(campaigns.ACTIVE, f"{ws}/cmp_1")
    await redis.zadd(keys.media_expiry(), {f"{ws}/med_1": 1})
    await redis.set(keys.meta_number(f"90{ws}"), ws)
    await redis.set(keys.meta_verify(f"d-{ws}"), f"{ws}|1700000000")  # a claim that carries its time
    await redis.sadd(keys.meta_verifiers("d-shared"), ws)
    await redis.sadd(keys.api_key_index(), kid)
    await redis.hset(keys.api_key(kid), mapping={"workspace_id": ws, "role": "workspace"})
    await redis.set(keys.api_key_generation(kid), 3)
    await redis.set(keys.nonce(kid, "n1"), 1)
    await redis.set(keys.key_rate_limit(kid), 1)
    await redis.zadd(keys.key_stream_slots(kid), {"lease-1": 1})
    await redis.zadd(keys.token_stream_slots(kid, "jti-1"), {"lease-2": 1})


async def _of(redis, ws: str) -> set[str]:
    """Every key and global member that belongs to `ws` alone."""
    own = {n async for n in redis.scan_iter(match="*") if f"{{{ws}}}" in n or f"{{k:{_key_id(ws)}}}" in n}
    for name in (keys.workspaces(), keys.all_sessions(), campaigns.ACTIVE, keys.meta_verifiers("d-shared"),
                 keys.api_key_index()):
        own |= {f"{name} {m}" for m in await redis.smembers(name) if m.partition("/")[0] in (ws, _key_id(ws))}
    own |= {f"expiry {m}" for m in await redis.zrange(keys.media_expiry(), 0, -1) if m.partition("/")[0] == ws}
    for name in (keys.meta_number(f"90{ws}"), keys.meta_verify(f"d-{ws}")):
        own |= {name} if await redis.exists(name) else set()
    return own


async def test_the_purge_takes_the_workspaces_prefix_and_nothing_beside_it(store) -> None:
    redis = store
    assert slot_of(keys.events(WS)) == slot_of(keys.events(SAME_SLOT))
    for ws in (WS, LONGER, SAME_SLOT):
        await _furnish(redis, ws)
    others = {ws: await _of(redis, ws) for ws in (LONGER, SAME_SLOT)}

    counts = await WorkspacePurge(redis).purge(WS)

    kid = _key_id(WS)
    # events, session, history without record, campaign list, campaign, reply stamp
    assert (counts.messages, counts.keys, counts.api_keys) == (2, 6, 1), counts
    # workspaces, all sessions, active campaigns, media expiry, the number, the verify token, the verifiers
    assert counts.memberships == 7, counts
    assert await _of(redis, WS) == {keys.api_key_generation(kid), keys.api_key_revoked(kid)}
    assert await redis.get(keys.api_key_generation(kid)) == "3"  # a re-created id stays a new generation
    assert {ws: await _of(redis, ws) for ws in (LONGER, SAME_SLOT)} == others

    again = await WorkspacePurge(redis).purge(WS)
    assert (again.messages, again.keys, again.api_keys, again.memberships) == (0, 0, 0, 0), again


async def test_the_layout_check_holds_and_catches_a_key_outside_it(monkeypatch) -> None:
    check_layout()
    assert workspace_pattern("acme") == "wa:{acme}:*"
    with pytest.raises(ValueError):
        workspace_pattern("a*")

    def retention(ws: str) -> str:  # the older layout: the workspace is not the key's prefix
        return f"{keys.PREFIX}:retention:{ws}"

    def audit() -> str:  # a global key in a tag a workspace can have: a purge of `audit` would match it
        return f"{keys.PREFIX}:{{audit}}:log"

    for fn in (retention, audit):
        fn.__module__ = keys.__name__
        with monkeypatch.context() as m:
            m.setattr(keys, fn.__name__, fn)
            with pytest.raises(AssertionError):
                check_layout.__wrapped__()
