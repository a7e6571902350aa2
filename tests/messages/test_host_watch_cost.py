"""What the host's senders ask of Redis (actors/outbound.py, storage/stream_watch.py), counted by Redis itself:
linked idle sessions make no per-session polling reads, and a message wakes the host's watch about once.

The counts are Redis's own `INFO commandstats` on the service's Redis; the only XREAD users are the host's
watch and SSE streams, and none is open while counting."""

from __future__ import annotations

import asyncio

from wa_ray.storage.redis_client import connect
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import put_pacing, send, wait_status

WS = "watch-cost"
SESSIONS = [("w1", "15552260001"), ("w2", "15552260002")]
TO = "15552260009"


async def _calls(redis, *commands: str) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {c: int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands}


async def test_idle_sessions_poll_nothing_and_a_message_wakes_the_watch_once(api, phone_api, service) -> None:
    await put_pacing(api, WS, enabled=False)
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        for sid, phone in SESSIONS:
            await link_session(api, phone_api, events, WS, sid, phone)
    redis = connect(service.config.redis_url)
    try:
        await asyncio.sleep(1.5)  # the SSE stream's last read ends
        before = await _calls(redis, "xread", "xreadgroup")
        await asyncio.sleep(6)
        idle = {c: n - before[c] for c, n in (await _calls(redis, "xread", "xreadgroup")).items()}
        # A sender per session used to poll: its pending list, four leases and a blocking read each second
        # (~12 XREADGROUP a second for two sessions). Now: one watch read a second for the host, and each
        # sender's lease at its 5 s sweep; the other consumers of the service (webhooks, Cloud API) add a few.
        assert idle["xread"] <= 9, idle
        assert idle["xreadgroup"] <= 16, idle
        before = await _calls(redis, "xread")
        n = 6
        for i in range(n):
            sid = SESSIONS[i % len(SESSIONS)][0]
            sent = await send(api, WS, TO, f"watch-{i}", session_id=sid)
            await wait_status(api, WS, sent["message_id"], {"sent", "delivered", "read"})
        reads = (await _calls(redis, "xread"))["xread"] - before["xread"]
        assert reads <= 2 * n + 8, f"{reads} watch reads for {n} messages"  # one per entry, one per idle second
    finally:
        await redis.aclose()
