"""Ban risk on a real session: the daily new-contacts cap, the score's warnings and automatic pause, the
operator's resume, and what inbound messages count, asserted on events, the API and the simulator phones."""

from __future__ import annotations

import asyncio
import time

from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import eventually, inbox, message, put_pacing, send, wait_status
from wa_ray.storage import keys, tallies
from wa_ray.storage.campaign_replies import CampaignReplies
from wa_ray.storage.contact_log import DAY_S
from wa_ray.storage.redis_client import connect

WS_CAP, WS_RISK, WS_IN = "br-cap", "br-risk", "br-inbound"
DONE = {"sent", "delivered", "read"}


async def _put_ban_risk(api, ws: str, **body) -> dict:
    response = await api.put(f"/v1/workspaces/{ws}/ban-risk", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def _sent(api, ws: str, to: str, text: str) -> str:
    mid = (await send(api, ws, to, text, session_id="p1"))["message_id"]
    await wait_status(api, ws, mid, DONE)
    return mid


async def _provider_sessions(api, ws: str) -> dict:
    return (await api.get(f"/v1/workspaces/{ws}/provider")).json()["sessions"]


async def test_the_daily_cap_holds_new_contacts_until_a_slot_frees_or_an_operator_resumes(
        api, phone_api, service) -> None:
    await put_pacing(api, WS_CAP, enabled=False)
    policy = await _put_ban_risk(api, WS_CAP, daily_new_contacts=3, warn_at=[], pause_at=None,
                                 resume_cooldown_s=600)
    assert policy["daily_new_contacts"] == 3 and policy["pause_at"] is None
    contacts = [f"1555261000{i}" for i in range(1, 6)]
    redis = connect(service.config.redis_url)
    try:
        async with collect_events(await stream_url(api, service.base_url, WS_CAP)) as events:
            await link_session(api, phone_api, events, WS_CAP, "p1", "15552610000")
            started = time.time()
            for n, to in enumerate(contacts[:3]):
                await _sent(api, WS_CAP, to, f"hello {n}")
            again = await _sent(api, WS_CAP, contacts[0], "a known contact is never capped")
            assert again

            held = (await send(api, WS_CAP, contacts[3], "the fourth new contact", session_id="p1"))["message_id"]
            paused = await events.wait_for(lambda e: e["type"] == "session.paused")
            assert paused["data"]["reason"] == "daily_contacts_cap"
            assert started - 5 <= paused["data"]["resume_at"] - DAY_S <= time.time()  # the oldest stamp + 24 h
            await asyncio.sleep(1.5)
            assert (await message(api, WS_CAP, held))["status"] == "queued"
            assert await eventually(lambda: _is(_provider_sessions(api, WS_CAP), {"p1": False}))

            # a slot frees: the oldest first contact leaves the rolling day
            first = f"{contacts[0]}@c.us"
            await redis.zadd(keys.contacts(WS_CAP, "p1"), {first: time.time() - DAY_S - 1}, xx=True)
            resumed = await events.wait_for(lambda e: e["type"] == "session.resumed", timeout=20)
            assert resumed["data"]["reason"] == "daily_contacts_cap"
            await wait_status(api, WS_CAP, held, DONE)

            # at the cap again (the 2nd, 3rd and 4th contacts); an operator lets the fifth through
            fifth = (await send(api, WS_CAP, contacts[4], "the fifth new contact", session_id="p1"))["message_id"]
            await eventually(lambda: _true(len(events.of_type("session.paused")) == 2))
            assert events.of_type("session.paused")[1]["data"]["reason"] == "daily_contacts_cap"
            assert (await message(api, WS_CAP, fifth))["status"] == "queued"
            resume = await api.post(f"/v1/workspaces/{WS_CAP}/sessions/p1/resume")
            assert resume.status_code == 200 and resume.json()["resumed"] == "daily_contacts_cap"
            by_operator = await events.wait_for(lambda e: e["type"] == "session.resumed" and e["data"].get("operator"))
            assert by_operator["data"]["reason"] == "daily_contacts_cap"
            await wait_status(api, WS_CAP, fifth, DONE)
    finally:
        await redis.aclose()
    for n, to in enumerate(contacts):
        assert len(await inbox(phone_api, to)) == (2 if n == 0 else 1), to


async def _true(value: bool) -> bool:
    return value


async def _is(probe, expected) -> bool:
    return await probe == expected


async def test_warnings_at_the_thresholds_then_the_automatic_pause_and_the_resume(api, phone_api, service) -> None:
    # score after n sends to new contacts (no replies), per_hour 5 and a cap of 4:
    # send_rate 5n, new_contacts 7.5n, few_replies 15 from the third: 12.5, 25, 52.5, 65
    await put_pacing(api, WS_RISK, steps=[[100, 0.0]], per_hour=5, typing=False)
    await _put_ban_risk(api, WS_RISK, daily_new_contacts=4, warn_at=[20, 40], pause_at=60, resume_cooldown_s=600)
    contacts = [f"1555262000{i}" for i in range(1, 5)]
    async with collect_events(await stream_url(api, service.base_url, WS_RISK)) as events:
        await link_session(api, phone_api, events, WS_RISK, "p1", "15552620000")
        for n, to in enumerate(contacts):
            await _sent(api, WS_RISK, to, f"offer {n}")
        paused = await events.wait_for(lambda e: e["type"] == "session.paused", timeout=20)
        assert paused["data"] == {"reason": "ban_risk", "resume_at": None}
        warnings = [e for e in events.events if e["type"] == "session.ban_risk"]
        assert sorted(w["data"]["threshold"] for w in warnings) == [20, 40]  # each crossing once
        by_threshold = {w["data"]["threshold"]: w["data"] for w in warnings}
        assert by_threshold[20]["level"] == "warning" and by_threshold[40]["level"] == "critical"
        assert all(w["data"]["score"] >= w["data"]["threshold"] for w in warnings)
        assert set(by_threshold[40]["factors"]) == {"send_rate", "new_contacts", "failed", "refused", "few_replies"}

        risk = (await api.get(f"/v1/workspaces/{WS_RISK}/sessions/p1/ban-risk")).json()
        assert risk["paused"] is True and risk["risk"]["score"] == 65 and risk["risk"]["level"] == "critical"
        assert await eventually(lambda: _is(_provider_sessions(api, WS_RISK), {"p1": False}))
        held = (await send(api, WS_RISK, contacts[0], "held by the pause", session_id="p1"))["message_id"]
        await asyncio.sleep(2)
        assert (await message(api, WS_RISK, held))["status"] == "queued"

        resume = await api.post(f"/v1/workspaces/{WS_RISK}/sessions/p1/resume")
        assert resume.status_code == 200 and resume.json()["resumed"] == "ban_risk"
        await events.wait_for(lambda e: e["type"] == "session.resumed" and e["data"] == {"reason": "ban_risk",
                                                                                          "operator": True})
        await wait_status(api, WS_RISK, held, DONE)
        await asyncio.sleep(3)  # the trailing evaluation of that send: still above 60, but in the cool-down
        assert len([e for e in events.events if e["type"] == "session.paused"]) == 1
        assert len([e for e in events.events if e["type"] == "session.ban_risk"]) == 2
        after = (await api.get(f"/v1/workspaces/{WS_RISK}/sessions/p1/ban-risk")).json()
        assert after["paused"] is False and after["cooldown"] is True
    assert sorted(m["body"] for m in await inbox(phone_api, contacts[0])) == ["held by the pause", "offer 0"]


async def test_inbound_counts_received_replies_and_a_campaign_reply(api, phone_api, service) -> None:
    await put_pacing(api, WS_IN, enabled=False)
    ours, replier, stranger = "15552630000", "15552630001", "15552630002"
    redis = connect(service.config.redis_url)
    try:
        async with collect_events(await stream_url(api, service.base_url, WS_IN)) as events:
            await link_session(api, phone_api, events, WS_IN, "p1", ours)
            await _sent(api, WS_IN, replier, "our campaign message")
            await CampaignReplies(redis).remember_recipient(WS_IN, "p1", f"{replier}@c.us", "cmp-br")
            for phone, body in ((replier, "yes please"), (replier, "and another"), (stranger, "hi, first")):
                sent = await phone_api.post(f"/_phone/{phone}/messages", json={"to": ours, "body": body})
                assert sent.status_code in (200, 201), sent.text
                await events.wait_for(lambda e, b=body: e["type"] == "message.received" and e["data"]["text"] == b)

            async def day() -> dict:
                today = tallies.day_of()
                return (await tallies.session_days(redis, WS_IN, "p1", [today]))[today]

            assert await eventually(lambda: _has(day(), {"received": 3, "replies": 1}))
            assert await tallies.campaign_counts(redis, WS_IN, "cmp-br") == {"p1": {"replied": 1}}
            assert await redis.zscore(keys.contacts(WS_IN, "p1"), f"{stranger}@c.us") == 0  # wrote first
            assert (await redis.zscore(keys.contacts(WS_IN, "p1"), f"{replier}@c.us") or 0) > 0
    finally:
        await redis.aclose()


async def _has(probe, expected: dict) -> bool:
    got = await probe
    return all(got.get(k) == v for k, v in expected.items())
