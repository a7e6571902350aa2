"""The retention sweep as the running service runs it: the session supervisor's pass (the one its watch starts
every WA_RETENTION_SWEEP_S) trims a workspace's events at that workspace's days and leaves the neighbour's,
whose id starts with the first one's, at the operator's bound. Entries are dated by their stream ids."""

from __future__ import annotations

import time

import ray

from wa_ray import NAMESPACE, SUPERVISOR_NAME
from wa_ray.storage import keys

DAY_MS = 86_400_000


async def test_the_supervisors_pass_trims_by_each_workspaces_days(api, live_redis, unique_ws) -> None:
    ws, neighbour = unique_ws, unique_ws + "x"
    put = await api.put(f"/v1/workspaces/{ws}/retention", json={"events_days": 1})
    assert put.status_code == 200, put.text
    now_ms = int(time.time() * 1000)
    for w in (ws, neighbour):
        await live_redis.xadd(keys.events(w), {"e": "{}"}, id=f"{now_ms - 2 * DAY_MS}-0")  # two days old
        await live_redis.xadd(keys.events(w), {"e": "{}"}, id=f"{now_ms - 60_000}-0")  # a minute old
    supervisor = ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
    counts = await supervisor.sweep_retention.remote()
    assert counts["events"] >= 1, counts
    assert [i for i, _ in await live_redis.xrange(keys.events(ws))] == [f"{now_ms - 60_000}-0"]
    assert await live_redis.xlen(keys.events(neighbour)) == 2, "the neighbour keeps 30 days, the bound"
