"""The campaign runner and a draft in the active set: on a Redis Cluster the API adds a campaign to the global
active set before the per-workspace script moves it out of draft (issue 16), so the runner meets drafts on
their way in. It must leave them alone: no feeding, and no SREM that could race the API's add-then-move."""

from __future__ import annotations

import time
from types import SimpleNamespace

import redis.asyncio as aioredis

from wa_ray.actors.campaign_runner import CampaignRunner
from wa_ray.storage.campaigns import ACTIVE, DRAFT, Campaign, CampaignStore

WS, CID = "ws-draft", "cmp_draft01"


async def test_a_draft_in_the_active_set_is_skipped_and_stays_there(redis: aioredis.Redis) -> None:
    store = CampaignStore(redis)
    await store.create(Campaign(CID, WS, "d", DRAFT, time.time(), "text", {"text": "hi"}, None, None, "bulk"))
    await redis.sadd(ACTIVE, f"{WS}/{CID}")  # the API's add, its move out of draft not yet run
    # only the store: a step that went past the draft check would need the runner's other parts and fail
    runner = SimpleNamespace(_store=store)
    await CampaignRunner.__ray_metadata__.modified_class.step(runner, WS, CID)
    assert await redis.sismember(ACTIVE, f"{WS}/{CID}")
    assert (await store.get(WS, CID)).status == DRAFT
