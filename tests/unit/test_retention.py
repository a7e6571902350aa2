"""The retention sweep (storage/retention.py) on a Redis of its own: each kind is trimmed at its workspace's
days, another workspace keeps its own (the operator's bound), and entries are dated by writing their ids and
times directly, the sweep being run at a chosen `now`. The sweeps run on one Redis and on a 3-master Redis
Cluster (tests/redis_cluster.py)."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.storage import keys
from wa_ray.storage.retention import DAY_S, RetentionBounds, RetentionPolicy, RetentionStore, RetentionSweep

pytestmark = pytest.mark.asyncio

SHORT, LONG = "ws-short", "ws-shortx"  # the neighbour's id starts with the other's


@pytest.fixture(params=["redis", "cluster_redis"])
def store(request: pytest.FixtureRequest):
    """The test's Redis: one server, then a cluster."""
    return request.getfixturevalue(request.param)


def _id(ts: float, seq: int = 0) -> str:
    return f"{int(ts * 1000)}-{seq}"


async def test_sweep_trims_each_kind_at_its_workspaces_days(store, tmp_path) -> None:
    redis = store
    now = time.time()
    bounds = RetentionBounds()  # 30 / 90 / 365 / 30
    await RetentionStore(redis, bounds).set(SHORT, RetentionPolicy(1, 1, 1, 1))
    old, recent = now - 2 * DAY_S, now - 3600
    for ws in (SHORT, LONG):
        for i, ts in enumerate((old, recent)):
            await redis.xadd(keys.events(ws), {"e": "{}"}, id=_id(ts, i))
            await redis.hset(keys.message(ws, f"msg_{ws}_{i}"), mapping={"workspace_id": ws, "created_at": repr(ts)})
            await redis.rpush(keys.message_history(ws, f"msg_{ws}_{i}"), "{}")
            media_id = f"med_{ws.replace('-', '')}{i}"
            await redis.set(keys.media(ws, media_id), orjson.dumps({"created_at": ts, "workspace_id": ws}))
            await redis.zadd(keys.media_expiry(), {f"{ws}/{media_id}": now + DAY_S})
            (tmp_path / ws).mkdir(exist_ok=True)
            (tmp_path / ws / media_id).write_bytes(b"x")
    audit = [(now - 400 * DAY_S, LONG), (old, SHORT), (old, LONG), (recent, SHORT)]
    for i, (ts, ws) in enumerate(audit):
        await redis.xadd(keys.audit(), {"e": orjson.dumps({"workspace_id": ws}).decode()}, id=_id(ts, i))

    counts = await RetentionSweep(redis, bounds, tmp_path).run_once(now)

    assert (counts.events, counts.messages, counts.media, counts.audit) == (1, 1, 1, 2), counts
    assert [e for e, _ in await redis.xrange(keys.events(SHORT))] == [_id(recent, 1)]
    assert len(await redis.xrange(keys.events(LONG))) == 2
    assert not await redis.exists(keys.message(SHORT, f"msg_{SHORT}_0"), keys.message_history(SHORT, f"msg_{SHORT}_0"))
    assert await redis.exists(keys.message(SHORT, f"msg_{SHORT}_1"), keys.message(LONG, f"msg_{LONG}_0")) == 2
    assert not await redis.exists(keys.media(SHORT, "med_wsshort0"))
    assert not (tmp_path / SHORT / "med_wsshort0").exists() and (tmp_path / SHORT / "med_wsshort1").exists()
    assert await redis.zscore(keys.media_expiry(), f"{SHORT}/med_wsshort0") is None
    assert (tmp_path / LONG / "med_wsshortx0").exists() and await redis.exists(keys.media(LONG, "med_wsshortx0"))
    left = [orjson.loads(f["e"])["workspace_id"] for _, f in await redis.xrange(keys.audit())]
    assert left == [LONG, SHORT]  # the 400-day entry (over the bound) and SHORT's 2-day one went

    assert (await RetentionSweep(redis, bounds, tmp_path).run_once(now)).__dict__ == {
        "events": 0, "messages": 0, "media": 0, "audit": 0}


async def test_the_sweep_knows_the_workspaces_of_the_registries_and_those_with_a_policy(store, tmp_path) -> None:
    """Events are trimmed for every workspace a registry set lists or that stored a policy; the key names
    of messages and media say their workspace, whatever lists it."""
    redis, now = store, time.time()
    bounds = RetentionBounds(1, 1, 365, 1)
    listed = {"ws-sessions": keys.workspaces(), "ws-provider": keys.provider_workspaces(),
              "ws-cloud": keys.cloud_workspaces(), "ws-webhook": keys.webhook_workspaces()}
    for ws, registry in listed.items():
        await redis.sadd(registry, ws)
    await redis.sadd(keys.workspaces(), "Bad..Id")  # never a workspace: not one of its keys is named
    await RetentionStore(redis, bounds).set("ws-policy", RetentionPolicy(1, 1, 1, 1))
    for ws in (*listed, "ws-policy", "ws-unlisted"):
        await redis.xadd(keys.events(ws), {"e": "{}"}, id=_id(now - 2 * DAY_S))
        await redis.xadd(keys.events(ws), {"e": "{}"}, id=_id(now - 60))
    await redis.hset(keys.message("ws-unlisted", "msg_old"), mapping={"workspace_id": "ws-unlisted",
                                                                      "created_at": repr(now - 2 * DAY_S)})
    await redis.hset(keys.message("ws-unlisted", "msg_new"), "created_at", repr(now - 60))
    await redis.set(keys.media("ws-unlisted", "med_old"), orjson.dumps({"created_at": now - 2 * DAY_S}))

    counts = await RetentionSweep(redis, bounds, tmp_path).run_once(now)

    assert (counts.events, counts.messages, counts.media) == (5, 1, 1), counts
    assert await redis.xlen(keys.events("ws-unlisted")) == 2  # listed nowhere: its stream is not known
    assert await redis.exists(keys.message("ws-unlisted", "msg_new"), keys.message("ws-unlisted", "msg_old")) == 1


async def test_a_stored_policy_over_a_lowered_bound_reads_as_the_bound(redis) -> None:
    await RetentionStore(redis, RetentionBounds()).set(SHORT, RetentionPolicy(20, 80, 300, 20))
    lowered = RetentionStore(redis, RetentionBounds(7, 7, 7, 7))
    assert await lowered.get(SHORT) == RetentionPolicy(7, 7, 7, 7)
    assert await lowered.get(LONG) == RetentionPolicy(7, 7, 7, 7)  # no policy: the bounds
    await redis.set(keys.retention(SHORT), b"not json")
    assert await lowered.get(SHORT) == RetentionPolicy(7, 7, 7, 7)
