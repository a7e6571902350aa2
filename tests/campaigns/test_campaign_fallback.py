"""A campaign's fallback template on the real service with the Cloud API simulator: a number logged out
mid-campaign with no other number hands its recipients to the Cloud API as the template, each reached once;
the provider failover (the watcher that moves a dead session's queue to the Cloud API) never sends a
campaign's text there as free text."""

from __future__ import annotations

from typing import Any

from tests.campaigns.test_campaigns import inboxes, recipients, wait_campaign
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.conftest import cloud_sim, meta_app  # noqa: F401 (the Cloud API simulator fixtures)
from tests.messages.helpers import cloud_config, put_pacing, put_provider
from wa_ray.storage import campaigns

TEMPLATE = "campaign_fallback"


def fallback() -> dict[str, Any]:
    return {"type": "template", "name": TEMPLATE, "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Dear {{name}}"}]}]}


async def test_a_lost_number_without_another_hands_its_recipients_to_the_fallback_template(
        api, phone_api, service, meta_app, live_redis) -> None:  # noqa: F811
    ws, phone, pnid, token = "cmp-fallback", "15554700001", "700150", "tok-cmp-fallback"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    sim.control.register_template(pnid, TEMPLATE, "en_US", body_parameters=1)
    await put_pacing(api, ws, steps=[[1000, 0.5]], typing=False, per_minute=1000, per_hour=1000)
    # grace 0: the provider watcher turns to the Cloud API the moment the number is lost, and would move the
    # messages stranded on it there as free text if a campaign's were not the runner's to move
    await put_provider(api, ws, priority="webjs", failover_grace_s=0, cloud=cloud_config(sim, pnid, token))
    rcpts = recipients("1555471", 10)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "fb1", phone)
        # the watcher announces flips from what it last saw: unless it saw the number linked (a round can take
        # longer than the link lasts on a loaded box), losing it is no flip and nothing is announced
        await events.wait_for(lambda e: e["type"] == "provider.changed" and e["data"]["to"] == "webjs")
        created = await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "fallback", "message": {"text": "Hi {{name}}"}, "recipients": rcpts,
            "fallback_template": fallback()})
        assert created.status_code == 201, created.text
        cid = created.json()["campaign_id"]
        await wait_campaign(api, ws, cid, lambda c: (c["numbers"].get("fb1", {}).get("sent", 0)
                                                     + c["numbers"].get("fb1", {}).get("delivered", 0)
                                                     + c["numbers"].get("fb1", {}).get("read", 0)) >= 2
                            and c["numbers"]["fb1"]["queued"] >= 1)
        assert (await phone_api.post(f"/_phone/{phone}/unlink", json={})).status_code == 200
        await events.wait_for(lambda e: e["type"] == "session.disconnected" and e["session_id"] == "fb1")
        # the watcher turns the workspace to the Cloud API on its next round; the runner may have moved every
        # message before that (a race the test does not judge), but the watcher must have had its chance
        await events.wait_for(lambda e: e["type"] == "provider.changed" and e["data"]["to"] == "meta", timeout=30)
        done = await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed", timeout=90)

    web = await inboxes(phone_api, rcpts)
    cloud = {r["to"]: sim.control.sent(to=r["to"], phone_number_id=pnid) for r in rcpts}
    # a message `sending` at the logout is its sender's to judge (failed `unconfirmed` at worst, never resent:
    # it may or may not have reached its recipient)
    assert done["totals"]["failed"] <= 1
    reached = {r["to"]: len(web[r["to"]]) + len(cloud[r["to"]]) for r in rcpts}
    assert max(reached.values()) == 1  # never twice, never both ways
    assert sum(reached.values()) >= 10 - done["totals"]["failed"]
    for r in rcpts:
        for m in web[r["to"]]:
            assert m["body"] == f"Hi {r['variables']['name']}" and m["from"] == phone
        for m in cloud[r["to"]]:  # the template, never the text as free text
            request = m["request"]
            assert request["type"] == "template" and "text" not in request
            assert request["template"]["name"] == TEMPLATE
            [body] = request["template"]["components"]
            assert body["parameters"] == [{"type": "text", "text": f"Dear {r['variables']['name']}"}]
    on_web = sum(len(m) for m in web.values())
    on_cloud = sum(len(m) for m in cloud.values())
    assert on_web >= 2 and on_cloud >= 5  # the queued ones moved and the unfed ones went straight there
    assert done["numbers"]["meta"]["assigned"] == on_cloud and done["numbers"]["meta"]["queued"] == 0
    assert done["numbers"]["fb1"]["queued"] == 0 and done["totals"]["pending"] == 0

    # each moved message is the same message (same id, one history) that became the template, not a copy
    assert await live_redis.scard(campaigns.open_key(ws, cid)) == 0
    moved = 0
    for r in rcpts:
        for m in cloud[r["to"]]:
            ours = m["request"]["biz_opaque_callback_data"]
            record = (await api.get(f"/v1/workspaces/{ws}/messages/{ours}")).json()
            assert record["provider"] == "meta" and record["failover"] is False
            assert not [h for h in record["history"] if h.get("rerouted_from")]  # not the failover's doing
            moved += any(h.get("campaign_move") for h in record["history"])
    assert moved >= 1  # at least one was queued on the number when it was lost


async def test_with_another_number_the_recipients_stay_on_whatsapp_web(api, phone_api, service,
                                                                       meta_app) -> None:  # noqa: F811
    ws, pnid, token = "cmp-fallback-2", "700151", "tok-cmp-fallback-2"
    numbers = {"fa": "15554800001", "fb": "15554800002"}
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    sim.control.register_template(pnid, TEMPLATE, "en_US", body_parameters=1)
    await put_pacing(api, ws, steps=[[1000, 0.5]], typing=False, per_minute=1000, per_hour=1000)
    await put_provider(api, ws, priority="webjs", failover_grace_s=0, cloud=cloud_config(sim, pnid, token))
    rcpts = recipients("1555481", 10)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        for sid, phone in numbers.items():
            await link_session(api, phone_api, events, ws, sid, phone)
        created = await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "two", "message": {"text": "Hi {{name}}"}, "recipients": rcpts, "fallback_template": fallback()})
        cid = created.json()["campaign_id"]
        await wait_campaign(api, ws, cid, lambda c: c["numbers"].get("fa", {}).get("queued", 0) >= 1
                            and sum(n["sent"] + n["delivered"] + n["read"] for n in c["numbers"].values()) >= 2)
        assert (await phone_api.post(f"/_phone/{numbers['fa']}/unlink", json={})).status_code == 200
        done = await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed", timeout=90)
    web = await inboxes(phone_api, rcpts)
    assert all(sim.control.sent(to=r["to"], phone_number_id=pnid) == [] for r in rcpts)  # the other number first
    assert max(len(m) for m in web.values()) == 1
    assert sum(len(m) for m in web.values()) >= 10 - done["totals"]["failed"] and done["totals"]["failed"] <= 1
    assert "meta" not in done["numbers"]


async def test_the_failover_watcher_leaves_a_briefly_dropped_numbers_campaign_texts_alone(
        api, phone_api, service, meta_app) -> None:  # noqa: F811
    """The number's socket drops for a few seconds: the provider watcher (grace 0) turns the workspace to the
    Cloud API and would move the texts queued on it there as free text; they are the campaign's, so they stay,
    and the number's sender sends them once it is back (it reclaims what the watcher read)."""
    ws, phone, pnid, token = "cmp-fallback-3", "15554900001", "700152", "tok-cmp-fallback-3"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    sim.control.register_template(pnid, TEMPLATE, "en_US", body_parameters=1)
    await put_pacing(api, ws, steps=[[1000, 0.5]], typing=False, per_minute=1000, per_hour=1000)
    await put_provider(api, ws, priority="webjs", failover_grace_s=0, cloud=cloud_config(sim, pnid, token))
    rcpts = recipients("1555491", 8)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "fd1", phone)
        # no number before the scan, so the workspace was on the Cloud API; the watcher's look after it says so
        await events.wait_for(lambda e: e["type"] == "provider.changed" and e["data"]["to"] == "webjs")
        created = await api.post(f"/v1/workspaces/{ws}/campaigns", json={
            "name": "drop", "message": {"text": "Hi {{name}}"}, "recipients": rcpts, "fallback_template": fallback()})
        cid = created.json()["campaign_id"]
        await wait_campaign(api, ws, cid, lambda c: c["numbers"].get("fd1", {}).get("queued", 0) >= 2)
        mark = len(events.events)
        assert (await phone_api.post(f"/_phone/{phone}/drop", json={"seconds": 6})).status_code == 200
        await events.wait_for(lambda e: e["type"] == "session.status" and e["data"]["state"] == "connected"
                              and events.events.index(e) >= mark, timeout=40)
        done = await wait_campaign(api, ws, cid, lambda c: c["status"] == "completed", timeout=90)
        seen = [(e["type"], e["data"].get("state") or e["data"].get("to")) for e in events.events[mark:]
                if e["type"] in ("provider.changed", "session.status")]
    assert ("provider.changed", "meta") in seen, seen  # the watcher did turn to the Cloud API meanwhile
    web = await inboxes(phone_api, rcpts)
    assert all(sim.control.sent(to=r["to"], phone_number_id=pnid) == [] for r in rcpts)  # nothing as free text
    assert max(len(m) for m in web.values()) == 1
    assert sum(len(m) for m in web.values()) == 8 - done["totals"]["failed"] and done["totals"]["failed"] <= 1
    assert "meta" not in done["numbers"]
