"""The runner's restart, the schedule and the plan limit, on the real service."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import ray

from tests.campaigns.test_campaigns import get_campaign, inboxes, recipients, wait_campaign
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import put_pacing
from wa_ray import NAMESPACE
from wa_ray.actors.campaign_runner import CAMPAIGN_RUNNER_NAME
from wa_ray.storage import keys


async def _records(redis, ws: str, cid: str) -> list[dict]:
    out = []
    for i in range(12):
        value = await redis.get(keys.idempotency(ws, f"cmp:{cid}:{i}"))
        mid = (value or "").partition("|")[0]
        out.append({"i": i, "mid": mid, **({k: v for k, v in (await redis.hgetall(keys.message(ws, mid))).items()
                                           if k in ("status", "session_id", "held", "error", "reason")} if mid else {})})
    return out


async def test_runner_killed_mid_campaign_resumes_without_a_second_send(api, phone_api, service, live_redis) -> None:
    ws = "cmp-restart"
    await put_pacing(api, ws, steps=[[1000, 0.3]], typing=False, per_minute=1000, per_hour=1000)
    rcpts = recipients("1555341", 12)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        for sid, phone in {"r1": "15553400001", "r2": "15553400002"}.items():
            await link_session(api, phone_api, events, ws, sid, phone)
        cid = (await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "restart", "message": {"text": "Hey {{name}}"}, "recipients": rcpts})).json()["campaign_id"]
        runner = ray.get_actor(CAMPAIGN_RUNNER_NAME, namespace=NAMESPACE)
        for reached in (2, 6):
            await wait_campaign(api, ws, cid, lambda c, n=reached: c["totals"]["sent"] + c["totals"]["delivered"]
                                + c["totals"]["read"] >= n)
            ray.kill(runner, no_restart=False)  # Ray restarts it (max_restarts=-1); its state is all in Redis
            await asyncio.sleep(0.5)
        done = await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed", timeout=90)
    got = await inboxes(phone_api, rcpts)
    assert {to: len(m) for to, m in got.items() if len(m) != 1} == {}, (done, await _records(live_redis, ws, cid))
    assert done["totals"]["sent"] + done["totals"]["delivered"] + done["totals"]["read"] == 12
    assert len(Counter(m[0]["from"] for m in got.values())) == 2


async def test_scheduled_campaign_waits_for_its_start(api, phone_api, service) -> None:
    ws = "cmp-sched"
    await put_pacing(api, ws, steps=[[1000, 0.1]], typing=False, per_minute=1000, per_hour=1000)
    rcpts = recipients("1555351", 3)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "s1", "15553500001")
        start_at = time.time() + 4
        created = await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "later", "message": {"text": "Later {{name}}"}, "recipients": rcpts,
            "schedule": {"start_at": start_at, "daily_hours": {"from": "00:00", "to": "23:59"},
                         "time_zone": "Europe/Madrid"}})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["status"] == "scheduled" and body["eta_s"] >= 3.0
        cid = body["campaign_id"]
        await asyncio.sleep(1.5)
        assert sum(len(m) for m in (await inboxes(phone_api, rcpts)).values()) == 0
        assert (await get_campaign(api, ws, cid))["status"] == "scheduled"
        running = await events.wait_for(lambda e: e["type"] == "campaign.progress"
                                        and e["data"]["status"] == "running", timeout=20)
        assert running["ts"] >= start_at - 0.1
        await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed")
    got = await inboxes(phone_api, rcpts)
    assert all(len(m) == 1 and m[0]["ts"] >= start_at - 0.5 for m in got.values())


async def test_plan_limit_makes_the_campaign_wait(api, phone_api, service) -> None:
    ws = "cmp-plan"
    await put_pacing(api, ws, steps=[[1000, 0.1]], typing=False, per_minute=1000, per_hour=1000)
    limits = await api.put(f"/v1/workspaces/{ws}/limits", json={"max_numbers": None, "messages_per_day": 3})
    assert limits.status_code == 200, limits.text
    rcpts = recipients("1555361", 5)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "s1", "15553600001")
        cid = (await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "capped", "message": {"text": "Cap {{name}}"}, "recipients": rcpts})).json()["campaign_id"]
        waiting = await events.wait_for(lambda e: e["type"] == "campaign.progress"
                                        and e["data"].get("waiting") == "plan_limit", timeout=30)
        assert waiting["data"]["status"] == "running"
        c = await wait_campaign(api, ws, cid, lambda c: c["totals"]["queued"] == 0)
        assert c["status"] == "running" and c["waiting"] == "plan_limit" and c["totals"]["pending"] == 2
        await asyncio.sleep(1.0)
        assert sum(len(m) for m in (await inboxes(phone_api, rcpts)).values()) == 3
        assert (await api.post(f"/v1/workspaces/{ws}/campaigns/{cid}/cancel")).status_code == 200
        done = await wait_campaign(api, ws, cid, lambda c: c["totals"]["cancelled"] == 2)
        assert done["status"] == "cancelled"


async def test_daily_new_contacts_cap_bounds_each_number(api, phone_api, service) -> None:
    ws = "cmp-cap"
    await put_pacing(api, ws, steps=[[1000, 0.1]], typing=False, per_minute=1000, per_hour=1000)
    policy = await api.put(f"/v1/workspaces/{ws}/ban-risk", json={"daily_new_contacts": 2, "pause_at": None})
    assert policy.status_code == 200, policy.text
    numbers = {"c1": "15553700001", "c2": "15553700002"}
    rcpts = recipients("1555371", 6)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        for sid, phone in numbers.items():
            await link_session(api, phone_api, events, ws, sid, phone)
        cid = (await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "cap", "message": {"text": "New {{name}}"}, "recipients": rcpts})).json()["campaign_id"]
        c = await wait_campaign(api, ws, cid, lambda c: c["waiting"] == "numbers" and c["totals"]["queued"] == 0)
        await asyncio.sleep(1.0)
        c = await get_campaign(api, ws, cid)
    got = await inboxes(phone_api, rcpts)
    by_number = Counter(m[0]["from"] for m in got.values() if m)
    assert by_number == {numbers["c1"]: 2, numbers["c2"]: 2}  # two new contacts each, then no room
    assert max(len(m) for m in got.values()) == 1
    assert c["status"] == "running" and c["totals"]["pending"] == 2
    assert (await api.post(f"/v1/workspaces/{ws}/campaigns/{cid}/cancel")).status_code == 200
