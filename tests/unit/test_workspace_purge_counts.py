"""`WorkspacePurge.purge` answers what it removed even when the supervisor's follow-up runs in its middle, and
still leaves the tombstone that lets the follow-up catch a delivery settling after it (storage/workspace_purge.py)."""

from __future__ import annotations

import pytest

from wa_ray.storage import keys
from wa_ray.storage.workspace_purge import PurgeCounts, WorkspacePurge

pytestmark = pytest.mark.asyncio

WS, EP = "ws-purge", "we_0123456789abcdef"


async def _furnish(redis) -> None:
    """A workspace with an endpoint whose deliveries failed: the keys and members the follow-up also names."""
    await redis.sadd(keys.workspaces(), WS)
    await redis.sadd(keys.webhook_workspaces(), WS)
    await redis.hset(keys.webhook_endpoints(WS), EP, "{}")
    await redis.sadd(keys.webhook_endpoint_lanes(), f"{WS}/{EP}")
    await redis.xadd(keys.webhook_queue(WS, EP), {"e": "x"})
    await redis.rpush(keys.endpoint_dead_letters(WS, EP), "x")
    await redis.rpush(keys.dead_letters(WS), "x")
    await redis.hset(keys.webhook_attempts(WS), "evt", 3)


class FollowedUpMidway(WorkspacePurge):
    """The supervisor's follow-up lands while the purge is between its listing and its deletes."""

    async def _api_keys(self, ws: str) -> int:
        await WorkspacePurge(self._redis).follow_up()
        return await super()._api_keys(ws)


async def test_a_follow_up_midway_does_not_change_the_counts(redis) -> None:
    await _furnish(redis)
    alone = await WorkspacePurge(redis).purge(WS)
    await redis.flushall()
    await _furnish(redis)
    raced = await FollowedUpMidway(redis).purge(WS)
    assert alone == raced, (alone, raced)
    assert alone.memberships == 3 and alone.keys == 5, alone  # workspaces, webhook set, lane; the 5 keys


async def test_the_tombstone_still_catches_a_delivery_that_settles_after(redis) -> None:
    await _furnish(redis)
    assert await WorkspacePurge(redis).purge(WS, PurgeCounts()) != PurgeCounts()
    assert await redis.hexists(keys.purged_workspaces(), WS)
    await redis.rpush(keys.endpoint_dead_letters(WS, EP), "late")  # a retry that was in flight at the delete
    await redis.hset(keys.webhook_attempts(WS), "evt", 4)
    assert await WorkspacePurge(redis).follow_up() == 2
    assert not await redis.exists(keys.endpoint_dead_letters(WS, EP), keys.webhook_attempts(WS))
