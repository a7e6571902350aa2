"""Priority order and the pacing policy on a real session, asserted on the simulator phone's inbox."""

from __future__ import annotations

import time

from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import eventually, inbox, message, put_pacing, send, wait_status

WS_PRIO, WS_PACE = "msg-prio", "msg-pace"


async def test_urgent_goes_before_bulk(api, phone_api, service) -> None:
    await put_pacing(api, WS_PRIO, enabled=False)
    to = "15552230002"
    async with collect_events(await stream_url(api, service.base_url, WS_PRIO)) as events:
        created = await api.post(f"/v1/workspaces/{WS_PRIO}/sessions", json={"session_id": "p1"})
        assert created.status_code == 201
        qr = await events.wait_for(lambda e: e["type"] == "session.qr")
        # queued while the session waits for its scan: bulk first, urgent last
        order = [("bulk", "b1"), ("bulk", "b2"), ("normal", "n1"), ("bulk", "b3"), ("high", "h1"), ("urgent", "u1")]
        ids = [(await send(api, WS_PRIO, to, text, session_id="p1", priority=p))["message_id"] for p, text in order]
        assert (await phone_api.post("/_phone/15552230001/scan", json={"qr": qr["data"]["qr"]})).status_code == 200
        for mid in ids:
            await wait_status(api, WS_PRIO, mid, {"sent", "delivered", "read"})
    bodies = [m["body"] for m in sorted(await inbox(phone_api, to), key=lambda m: m["ts"])]
    assert bodies == ["u1", "h1", "n1", "b1", "b2", "b3"]


async def test_progressive_gap_typing_delay_and_hourly_pause(api, phone_api, service) -> None:
    # the seed rule scaled down so the test takes seconds: 1st in the minute free, then 1 s apart,
    # a fixed 0.4 s of typing, and an hourly cap of 2
    await put_pacing(api, WS_PACE, steps=[[1, 0.0], [100, 1.0]], per_hour=2, typing=True, typing_per_char_s=0,
                     typing_min_s=0.4, typing_max_s=0.4, typing_jitter=0)
    to = "15552240002"
    async with collect_events(await stream_url(api, service.base_url, WS_PACE)) as events:
        await link_session(api, phone_api, events, WS_PACE, "p1", "15552240001")
        posted = time.time()
        ids = [(await send(api, WS_PACE, to, f"paced {i}", session_id="p1"))["message_id"] for i in range(3)]
        sent = [await events.wait_for(lambda e, m=m: e["type"] == "message.sent" and e["data"]["message_id"] == m)
                for m in ids[:2]]
        assert sent[0]["ts"] - posted >= 0.4 * 0.95  # typed
        assert sent[1]["ts"] - sent[0]["ts"] >= (1.0 + 0.4) * 0.95  # progressive gap + typing
        paused = await events.wait_for(lambda e: e["type"] == "session.paused")
        assert paused["data"]["reason"] == "hourly_cap"
        assert abs(paused["data"]["resume_at"] - (sent[0]["ts"] + 3600)) < 5
        assert (await message(api, WS_PACE, ids[2]))["status"] == "queued"
        provider = (await api.get(f"/v1/workspaces/{WS_PACE}/provider")).json()
        assert provider["sessions"] == {"p1": False}  # a paused session is not a healthy provider

        await put_pacing(api, WS_PACE, steps=[[1, 0.0], [100, 1.0]], per_hour=10, typing=False)
        await events.wait_for(lambda e: e["type"] == "session.resumed", timeout=20)
        await wait_status(api, WS_PACE, ids[2], {"sent", "delivered", "read"})
    assert sorted(m["body"] for m in await inbox(phone_api, to)) == ["paced 0", "paced 1", "paced 2"]
    assert await eventually(lambda: _unpaused(api))


async def _unpaused(api) -> bool:
    return (await api.get(f"/v1/workspaces/{WS_PACE}/provider")).json()["sessions"] == {"p1": True}
