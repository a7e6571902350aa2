"""Provider choice and failover, both ways, against both simulators.

Web session unlinked -> Cloud API (and back when it relinks); Cloud API outage -> web session
(and back when the breaker's probe finds it healthy); a failure with nowhere to go fails with the
original error; Meta's throttling is backed off and retried; a manual override wins.
"""

from __future__ import annotations

import asyncio

from tests.events import collect_events
from tests.flows import link_session, provider_snapshot_expired, stream_url
from tests.messages.helpers import (
    FINAL,
    cloud_config,
    eventually,
    inbox,
    message,
    put_pacing,
    put_provider,
    send,
    wait_status,
)

DONE = {"sent", "delivered", "read"}


def _changed(events, to: str, after: int = 0):
    return lambda e: (e["type"] == "provider.changed" and e["data"]["to"] == to
                      and events.events.index(e) >= after)


def _cloud_sent(sim, to: str, mid: str) -> list[dict]:
    return [m for m in sim.control.sent(to=to) if m["request"].get("biz_opaque_callback_data") == mid]


async def test_unlinked_web_session_fails_over_to_cloud_api_and_back(api, phone_api, service, meta_app) -> None:
    ws, phone, to, pnid, token = "msg-fo-web", "15552270001", "15552270002", "700101", "tok-fo-web"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    await put_pacing(api, ws, enabled=False)
    await put_provider(api, ws, priority="webjs", failover_grace_s=0, cloud=cloud_config(sim, pnid, token))
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        sim.control.inbound(to, pnid, "hi, any news?")  # opens Meta's 24 h window, arrives as message.received
        received = await events.wait_for(lambda e: e["type"] == "message.received")
        assert (received["data"]["provider"], received["data"]["text"]) == ("meta", "hi, any news?")

        await link_session(api, phone_api, events, ws, "w1", phone)
        # no session could send before the scan, so the workspace was on the Cloud API; now it is back
        linked = await events.wait_for(_changed(events, "webjs"))
        assert linked["data"]["from"] == "meta" and linked["data"]["reason"] == "priority provider is healthy"
        await provider_snapshot_expired(service)
        web = await send(api, ws, to, "via web")
        assert web["provider"] == "webjs"
        await wait_status(api, ws, web["message_id"], DONE)

        mark = len(events.events)
        await phone_api.post(f"/_phone/{phone}/unlink", json={})
        changed = await events.wait_for(_changed(events, "meta", mark))
        assert changed["data"]["from"] == "webjs" and changed["data"]["cloud_api"] is True
        await provider_snapshot_expired(service)
        cloud = await send(api, ws, to, "via cloud")
        assert cloud["provider"] == "meta"
        done = await wait_status(api, ws, cloud["message_id"], {"delivered", "read"})  # acks via /webhooks/meta
        assert done["wa_message_id"].startswith("wamid.")
        assert len(_cloud_sent(sim, to, cloud["message_id"])) == 1
        ack = await events.wait_for(lambda e: e["type"] == "message.ack"
                                    and e["data"]["message_id"] == cloud["message_id"])
        assert ack["data"]["provider"] == "meta"

        # a message stuck on the dead session (forced there by an override) is moved once the override goes
        await put_provider(api, ws, priority="webjs", override="webjs", failover_grace_s=0,
                           cloud=cloud_config(sim, pnid, token))
        stuck = await send(api, ws, to, "stuck on the web", session_id="w1")
        assert stuck["provider"] == "webjs"
        await put_provider(api, ws, priority="webjs", failover_grace_s=0, cloud=cloud_config(sim, pnid, token))
        moved = await wait_status(api, ws, stuck["message_id"], DONE)
        assert moved["provider"] == "meta" and moved["failover"] is True
        assert [h.get("rerouted_from") for h in moved["history"] if h.get("rerouted_from")] == ["webjs"]
        assert len(_cloud_sent(sim, to, stuck["message_id"])) == 1

        # relinking brings WhatsApp Web back as the priority provider
        mark = len(events.events)
        qr = (await api.get(f"/v1/workspaces/{ws}/sessions/w1/qr")).json()["qr"]  # the page offers a new code
        assert (await phone_api.post(f"/_phone/{phone}/scan", json={"qr": qr})).status_code == 200
        back = await events.wait_for(_changed(events, "webjs", mark), timeout=30)
        assert back["data"]["from"] == "meta"
        await provider_snapshot_expired(service)
        again = await send(api, ws, to, "via web again")
        assert again["provider"] == "webjs"
        await wait_status(api, ws, again["message_id"], DONE)

        # a manual override wins over a healthy priority provider
        await put_provider(api, ws, priority="webjs", override="meta", cloud=cloud_config(sim, pnid, token))
        forced = await send(api, ws, to, "forced to cloud")
        assert forced["provider"] == "meta"
        await wait_status(api, ws, forced["message_id"], DONE)
        override = await events.wait_for(_changed(events, "meta", mark))
        assert override["data"]["reason"] == "manual override"

    web_bodies = sorted(m["body"] for m in await inbox(phone_api, to))
    assert web_bodies == ["via web", "via web again"]  # each once; nothing sent both ways


async def test_cloud_outage_fails_over_to_web_session_and_back(api, phone_api, service, meta_app) -> None:
    ws, phone, to, pnid, token = "msg-fo-cloud", "15552280001", "15552280002", "700102", "tok-fo-cloud"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    sim.control.inbound(to, pnid, "hello")  # the 24 h window
    await put_pacing(api, ws, enabled=False)
    cloud = cloud_config(sim, pnid, token, breaker_failures=2, breaker_cooldown_s=1.0, timeout_s=0.5, confirm_s=1.0)
    await put_provider(api, ws, priority="meta", cloud=cloud)
    try:
        async with collect_events(await stream_url(api, service.base_url, ws)) as events:
            await link_session(api, phone_api, events, ws, "f1", phone)
            await provider_snapshot_expired(service)
            first = await send(api, ws, to, "cloud before")
            assert first["provider"] == "meta"
            await wait_status(api, ws, first["message_id"], DONE)

            mark = len(events.events)
            sim.control.set_outage("error")  # every Graph call answers 503, code 2
            during = [await send(api, ws, to, f"outage {i}") for i in range(2)]
            assert {m["provider"] for m in during} == {"meta"}
            for m in during:
                got = await wait_status(api, ws, m["message_id"], DONE)
                assert got["provider"] == "webjs" and got["failover"] is True
                [rerouted] = [h for h in got["history"] if h.get("rerouted_from")]
                assert rerouted["rerouted_from"] == "meta" and "cloud_api (#2)" in rerouted["reason"]
            changed = await events.wait_for(_changed(events, "webjs", mark))
            assert changed["data"]["from"] == "meta" and changed["data"]["cloud_api"] is False
            await provider_snapshot_expired(service)
            direct = await send(api, ws, to, "breaker open")
            assert direct["provider"] == "webjs"
            await wait_status(api, ws, direct["message_id"], DONE)

            mark = len(events.events)
            sim.control.set_outage("off")  # the breaker's probe (after 1 s) finds the API healthy again
            back = await events.wait_for(_changed(events, "meta", mark), timeout=20)
            assert back["data"]["from"] == "webjs"
            await provider_snapshot_expired(service)
            after = await send(api, ws, to, "cloud after")
            assert after["provider"] == "meta"
            await wait_status(api, ws, after["message_id"], DONE)

            # Meta accepts, then reports the failure in a status webhook (131026): retried once on the web
            sim.control.set_failure_delivery("webhook")
            sim.control.set_undeliverable([to])
            late = await send(api, ws, to, "undeliverable on cloud")
            got = await eventually(lambda: _on(api, ws, late["message_id"], "webjs"))
            assert [h.get("reason", "") for h in got["history"] if h.get("rerouted_from")][0].startswith(
                "cloud_api (#131026)")
            sim.control.set_failure_delivery("response")
            sim.control.set_undeliverable([])

            # no answer at all (the request hangs): Meta may have taken it, so the sender waits `confirm_s`
            # for a status webhook naming it; none comes, so it was not taken and the web session sends it
            sim.control.set_outage("hang", hang_seconds=5)
            hung = await send(api, ws, to, "no answer from cloud")
            got = await eventually(lambda: _on(api, ws, hung["message_id"], "webjs"), timeout=30)
            assert "ReadTimeout" in [h for h in got["history"] if h.get("rerouted_from")][0]["reason"]
    finally:
        sim.control.set_outage("off")
        sim.control.set_failure_delivery("response")
        sim.control.set_undeliverable([])
    web_bodies = sorted(m["body"] for m in await inbox(phone_api, to))
    assert web_bodies == ["breaker open", "no answer from cloud", "outage 0", "outage 1", "undeliverable on cloud"]
    assert sorted(m["text"] for m in sim.control.sent(to=to)) == ["cloud after", "cloud before",
                                                                  "undeliverable on cloud"]


async def _on(api, ws: str, mid: str, provider: str) -> dict | None:
    got = await message(api, ws, mid)
    return got if got["provider"] == provider and got["status"] in DONE else None


async def test_without_an_alternative_the_original_error_stands(api, service, meta_app) -> None:
    ws, pnid, token = "msg-fo-none", "700103", "tok-fo-none"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    await put_provider(api, ws, priority="meta", cloud=cloud_config(sim, pnid, token))
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        window = await send(api, ws, "15552290001", "no window open")  # Meta's 24 h rule is on by default
        got = await wait_status(api, ws, window["message_id"], FINAL)
        assert (got["status"], got["error_code"], got["failover"]) == ("failed", 131047, False)
        assert "cloud_api (#131047)" in got["reason"]
        failed = await events.wait_for(lambda e: e["type"] == "message.failed"
                                       and e["data"]["message_id"] == window["message_id"])
        assert failed["data"]["code"] == 131047 and failed["data"]["provider"] == "meta"


async def test_meta_throttling_is_backed_off_and_retried(api, service, meta_app) -> None:
    ws, pnid, token = "msg-fo-rate", "700104", "tok-fo-rate"
    sim = meta_app
    sim.control.register_phone_number(pnid, token)
    sim.control.set_window(enforce=False)
    sim.control.set_limits(throughput_per_second=2, pair_burst=2, pair_refill_seconds=1.0)
    try:
        # our own pacing off: the simulator's limits answer 130429 / 131056 and the sender backs off
        await put_provider(api, ws, priority="meta", cloud=cloud_config(sim, pnid, token, pair_refill_s=1.0))
        same = [await send(api, ws, "15552300001", f"pair {i}") for i in range(4)]
        spread = [await send(api, ws, f"1555230001{i}", f"spread {i}") for i in range(5)]
        for m in same + spread:
            await wait_status(api, ws, m["message_id"], DONE, timeout=60)
        sent = sim.control.sent(phone_number_id=pnid)
        ids = [m["request"]["biz_opaque_callback_data"] for m in sent]
        assert sorted(ids) == sorted(m["message_id"] for m in same + spread)  # each exactly once

        # our own pacing on (Meta's 2/s here): no second in which Meta saw more than 2
        await put_provider(api, ws, priority="meta",
                           cloud=cloud_config(sim, pnid, token, throughput_per_second=2, pair_burst=2,
                                              pair_refill_s=1.0))
        await asyncio.sleep(2.1)  # the cloud sender's config cache
        paced = [await send(api, ws, f"1555230002{i}", f"paced {i}") for i in range(6)]
        for m in paced:
            await wait_status(api, ws, m["message_id"], DONE, timeout=60)
        times = sorted(m["accepted_at"] for m in sim.control.sent(phone_number_id=pnid) if m["text"].startswith("paced"))
        assert len(times) == 6 and all(times[i + 2] - times[i] >= 0.95 for i in range(len(times) - 2))
    finally:
        sim.control.set_limits(throughput_per_second=80, pair_burst=45, pair_refill_seconds=6.0)
        sim.control.set_window(enforce=True)
