"""The webhook dispatcher's lane of a stream, from the stream's name alone (actors/webhook_dispatcher.py)."""

from __future__ import annotations

import pytest

from wa_ray.actors.webhook_dispatcher import lane_of_stream
from wa_ray.storage import keys


@pytest.mark.parametrize(("stream", "lane"), [
    (keys.events("acme"), "acme"),
    (keys.webhook_replay("acme"), "acme"),
    (keys.webhook_queue("acme", "ep_1"), "acme/ep_1"),
    (keys.endpoint_replay("acme", "ep_1"), "acme/ep_1"),
    (keys.events("webhook-queue"), "webhook-queue"),  # a workspace named like a kind is still its tag
])
def test_the_lane_follows_the_workspace_tag(stream: str, lane: str) -> None:
    assert lane_of_stream(stream) == lane


def test_the_lanes_snapshot_is_one_transaction_of_one_slot() -> None:
    """`WebhookDispatcher.lanes` reads these three in one MULTI: a cluster runs it only within one slot."""
    from wa_ray.storage.slots import slot_of

    assert len({slot_of(k) for k in (keys.webhook_lanes_version(), keys.webhook_workspaces(),
                                      keys.webhook_endpoint_lanes(), keys.webhook_lanes_seen())}) == 1
