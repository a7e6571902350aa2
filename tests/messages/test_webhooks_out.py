"""Outgoing webhooks from the durable outbox: signatures, backoff, 4xx rules, dead letters, replay, a crash."""

from __future__ import annotations

import asyncio

import orjson
import ray

from wa_ray.actors.webhook_signing import verify
from wa_ray.storage.events import EventLog
from wa_ray.storage.redis_client import connect
from tests.messages.hooks import scripted_receiver
from wa_ray import DISPATCHER_NAME, NAMESPACE
from wa_ray.events import MESSAGE_RECEIVED, Event

WS = "msg-hooks"
SECRET = "whsec-msg-hooks-0123456789"


async def test_retries_dead_letters_replay_and_a_dispatcher_crash(api, service) -> None:
    redis = connect(service.config.redis_url)
    log = EventLog(redis)

    async def event(n: int) -> str:
        return await log.publish(Event(MESSAGE_RECEIVED, WS, "s1", {"text": f"event {n}"}))

    try:
        with scripted_receiver() as hook:
            assert (await api.put(f"/v1/workspaces/{WS}/webhook", json={"url": hook.url, "secret": SECRET})
                    ).status_code == 204
            policy = await api.put(f"/v1/workspaces/{WS}/webhook/policy",
                                   json={"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 1.0})
            assert policy.json() == {"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 1.0}

            flaky, gone, busy, slow, dead = [await event(i) for i in range(5)]
            hook.script.update({flaky: [503, 503], gone: [404], busy: [429], slow: [408], dead: [500, 500, 500]})

            hits = await hook.wait(flaky, 3)
            assert [h.status for h in hits] == [503, 503, 200]
            for h in hits:  # each attempt signed afresh, over its own timestamp
                assert verify(SECRET, h.headers["x-timestamp"], h.body, h.headers["x-signature"])
                assert (h.headers["x-event-type"], h.headers["x-workspace-id"]) == ("message.received", WS)
            assert hits[1].at - hits[0].at >= 0.1 and hits[2].at - hits[1].at >= 0.2  # exponential backoff
            assert orjson.loads(hits[0].body)["id"] == flaky

            assert [h.status for h in await hook.wait(busy, 2)] == [429, 200]  # 429 and 408 are retried
            assert [h.status for h in await hook.wait(slow, 2)] == [408, 200]
            await hook.wait(dead, 3)
            await asyncio.sleep(0.5)
            assert [h.status for h in hook.of(gone)] == [404]  # any other 4xx is final

            letters = (await api.get(f"/v1/workspaces/{WS}/webhook/dead-letters")).json()
            assert letters["total"] == 2
            by_id = {i["event"]["id"]: i for i in letters["items"]}
            # the endpoint's answer is reported as its class and our code only, never the exact status
            assert (by_id[gone]["attempts"], by_id[gone]["status_class"], by_id[gone]["reason"]) == (
                1, "4xx", "permanent: http_4xx")
            assert (by_id[dead]["attempts"], by_id[dead]["status_class"], by_id[dead]["reason"]) == (
                3, "5xx", "max_attempts: http_5xx")
            assert "status_code" not in by_id[gone]

            # replay: the same event, same id, same bytes; a receiver drops what it has seen by X-Event-Id
            replayed = await api.post(f"/v1/workspaces/{WS}/webhook/dead-letters/replay", json={"event_ids": [gone]})
            assert replayed.json() == {"replayed": 1}
            again = await hook.wait(gone, 2)
            assert again[1].status == 200 and again[1].body == again[0].body
            assert again[1].headers["x-event-id"] == gone
            assert (await api.post(f"/v1/workspaces/{WS}/webhook/dead-letters/replay")).json() == {"replayed": 1}
            assert (await hook.wait(dead, 4))[-1].status == 200
            assert (await api.get(f"/v1/workspaces/{WS}/webhook/dead-letters")).json()["total"] == 0

            # the dispatcher dies while an event waits for its retry, at the first webhook and at an endpoint
            # (whose queue holds its copy): its successor delivers both
            await api.put(f"/v1/workspaces/{WS}/webhook/policy", json={"max_attempts": 5, "base_delay_s": 2.0})
            with scripted_receiver() as endpoint_hook:
                made = await api.post(f"/v1/workspaces/{WS}/webhooks", json={"url": endpoint_hook.url})
                assert made.status_code == 201
                survivor = await event(99)
                hook.script[survivor] = [503]
                endpoint_hook.script[survivor] = [503]
                await hook.wait(survivor, 1)
                await endpoint_hook.wait(survivor, 1)
                ray.kill(ray.get_actor(DISPATCHER_NAME, namespace=NAMESPACE), no_restart=False)  # Ray restarts it
                hits = await hook.wait(survivor, 2, timeout=60)
                assert hits[-1].status == 200 and len({h.headers["x-event-id"] for h in hits}) == 1
                at_endpoint = await endpoint_hook.wait(survivor, 2, timeout=60)
                assert at_endpoint[-1].status == 200
                print(f"\nafter a dispatcher kill: {len(hits)} deliveries of one event, same X-Event-Id; "
                      f"{len(at_endpoint)} at the endpoint")
                assert (await api.delete(f"/v1/workspaces/{WS}/webhooks/{made.json()['id']}")).status_code == 204
    finally:
        await redis.aclose()
