"""One session, one page, one sender, whatever overlaps: the BrowserHost side of the chaos suite's sender
stall (real Ray, Chromium, Redis).

Opens of one session can overlap in the host (a SessionActor killed mid-open and its successor's start,
both waiting for a browser launch). The last open wins and closes the other's page and sender; before,
the loser's sender was left running beside the winner, its heartbeat making the intent it held look owned
forever, and everything queued behind that intent waited (actors/outbound.py, module docstring).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import ray

from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect
from wa_ray.supervisors.session_supervisor import actor_name
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import FINAL, inbox, put_pacing, send, wait_status
from wa_ray import NAMESPACE


async def test_overlapping_opens_leave_one_page_and_one_sender(api, phone_api, service) -> None:
    if service.settings.session_hosting != "actor":
        pytest.skip("drives BrowserHost.open_session with a SessionActor as the owner (WA_SESSION_HOSTING=actor)")
    ws, sid, phone, to = "msg-opens", "opens1", "15552271001", "15552271002"
    await put_pacing(api, ws, enabled=False)
    redis = connect(service.config.redis_url)
    try:
        async with collect_events(await stream_url(api, service.base_url, ws)) as events:
            await link_session(api, phone_api, events, ws, sid, phone)
        await asyncio.sleep(0.5)  # the auth state is saved right after ready
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
        host = ray.get_actor(names[0], namespace=NAMESPACE)
        owner = ray.get_actor(actor_name(ws, sid), namespace=NAMESPACE)
        # the first closes the live page (and waits for it to close); the others find nothing to close
        opened = await asyncio.gather(*(host.open_session.remote(ws, sid, owner, True) for _ in range(3)),
                                      return_exceptions=True)
        assert any(not isinstance(o, BaseException) for o in opened), opened  # the last one in wins

        async def senders() -> list[str]:
            beats = [await redis.get(k) async for k in redis.scan_iter(match=keys.sender_alive("*"))]
            return sorted(b for b in beats if b and b.split("@")[0] == sid)

        deadline = time.monotonic() + 15  # a closed sender deletes its beat; a lost delete lapses in 10 s
        while len(await senders()) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert len(await senders()) == 1, await senders()
        await asyncio.sleep(3)  # nothing left running to start beating again
        assert len(await senders()) == 1, await senders()
        ids = [(await send(api, ws, to, f"after opens {i}", session_id=sid))["message_id"] for i in range(5)]
        records = [await wait_status(api, ws, mid, FINAL, timeout=60) for mid in ids]
        assert all(r["status"] in ("sent", "delivered", "read") for r in records), records
        assert sorted(m["body"] for m in await inbox(phone_api, to)) == [f"after opens {i}" for i in range(5)]
    finally:
        await redis.aclose()
