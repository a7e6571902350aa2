"""Several webhook endpoints per workspace, against the running service and receivers on loopback: each
gets the event types it subscribed to, with its own headers and secret (verified with the `standardwebhooks`
package); a batching endpoint gets JSON arrays, each event once with its own id; a dead endpoint holds up
no other and keeps its own dead letters, which replay to it with the same ids; a deleted one gets nothing."""

from __future__ import annotations

import asyncio
import time

import orjson
from standardwebhooks.webhooks import Webhook

from wa_ray.events import MESSAGE_RECEIVED, SESSION_STATUS, Event
from wa_ray.storage import keys
from wa_ray.storage.events import EventLog
from wa_ray.storage.redis_client import connect
from tests.conftest import OPERATOR
from tests.receiver import Receiver, running_receiver


async def _publish(service, ws: str, types: list[str]) -> list[str]:
    redis = connect(service.config.redis_url)
    try:
        log = EventLog(redis)
        return [await log.publish(Event(t, ws, "s1", {"n": i})) for i, t in enumerate(types)]
    finally:
        await redis.aclose()


def _events(hook: Receiver) -> list[dict]:
    """Every event a receiver got, a batch's one by one."""
    out: list[dict] = []
    for d in list(hook.deliveries):
        body = orjson.loads(d.body)
        out += body if isinstance(body, list) else [body]
    return out


async def _until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not delivered in time"
        await asyncio.sleep(0.05)


async def _create(api, ws: str, **body) -> dict:
    response = await api.post(f"/v1/workspaces/{ws}/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_each_endpoint_gets_what_it_subscribed_to_with_its_own_headers_and_secret(api, service) -> None:
    ws = "hooks-endpoints-subs"
    with running_receiver() as first, running_receiver() as messages, running_receiver() as statuses:
        assert (await api.put(f"/v1/workspaces/{ws}/webhook",
                              json={"url": first.url, "secret": "first-form-secret-0123"})).status_code == 204
        a = await _create(api, ws, url=messages.url, events=["message.*"], headers={"Authorization": "Bearer abc123"})
        b = await _create(api, ws, url=statuses.url, events=[SESSION_STATUS], description="owners")
        assert a["secret"].startswith("whsec_") and b["secret"] != a["secret"]
        assert a["header_names"] == ["Authorization"] and "abc123" not in str(a)
        listed = (await api.get(f"/v1/workspaces/{ws}/webhooks")).json()["items"]
        assert [e["id"] for e in listed] == [a["id"], b["id"]] and all(e["secret"] is None for e in listed)

        ids = await _publish(service, ws, [MESSAGE_RECEIVED, SESSION_STATUS, MESSAGE_RECEIVED, SESSION_STATUS])
        await _until(lambda: len(_events(messages)) >= 2 and len(_events(statuses)) >= 2 and len(_events(first)) >= 4)
        await asyncio.sleep(0.5)  # nothing more is coming
        # each exactly once; in no promised order (an endpoint has up to 32 deliveries in flight)
        assert sorted(e["id"] for e in _events(messages)) == sorted([ids[0], ids[2]])
        assert sorted(e["id"] for e in _events(statuses)) == sorted([ids[1], ids[3]])
        assert sorted(e["id"] for e in _events(first)) == sorted(ids)  # the first webhook still gets everything
        for hook, endpoint in ((messages, a), (statuses, b)):
            for d in hook.deliveries:
                assert Webhook(endpoint["secret"]).verify(d.body, d.headers)["id"] == d.headers["webhook-id"]
        assert all(d.headers["authorization"] == "Bearer abc123" for d in messages.deliveries)
        assert not any("authorization" in d.headers for d in statuses.deliveries + first.deliveries)

        # a change applies to what comes next
        patched = await api.patch(f"/v1/workspaces/{ws}/webhooks/{b['id']}",
                                  json={"events": ["*"], "headers": {"X-Tenant": "acme"}})
        assert patched.status_code == 200 and patched.json()["header_names"] == ["X-Tenant"]
        (later,) = await _publish(service, ws, [MESSAGE_RECEIVED])
        delivery = await statuses.wait_for(lambda d: d.headers.get("webhook-id") == later)
        assert delivery.headers["x-tenant"] == "acme"


async def test_a_batching_endpoint_gets_arrays_each_event_once_with_its_own_id(api, service) -> None:
    ws = "hooks-endpoints-batch"
    with running_receiver() as hook:
        endpoint = await _create(api, ws, url=hook.url, batch={"max_events": 5, "max_wait_ms": 300})
        ids = await _publish(service, ws, [MESSAGE_RECEIVED] * 12)
        await _until(lambda: len(_events(hook)) >= 12)
        await asyncio.sleep(0.5)
        got = [e["id"] for e in _events(hook)]
        assert sorted(got) == sorted(ids) and len(got) == 12, "each event once"
        verifier = Webhook(endpoint["secret"])
        assert len(hook.deliveries) >= 3
        for d in hook.deliveries:
            batch = verifier.verify(d.body, d.headers)
            assert isinstance(batch, list) and 1 <= len(batch) <= 5
            assert d.headers["webhook-id"].startswith("batch_") and d.headers["x-batch-size"] == str(len(batch))
            assert d.headers["x-event-type"] == "batch"


async def test_a_dead_endpoint_holds_up_no_other_and_replays_its_own_dead_letters(api, service) -> None:
    ws = "hooks-endpoints-dead"
    await api.put(f"/v1/workspaces/{ws}/webhook/policy", json={"max_attempts": 2, "base_delay_s": 0.1})
    with running_receiver() as dead, running_receiver() as alive:
        dead.status = 503
        bad = await _create(api, ws, url=dead.url)
        good = await _create(api, ws, url=alive.url)
        ids = await _publish(service, ws, [MESSAGE_RECEIVED] * 3)
        await _until(lambda: len(_events(alive)) >= 3)
        letters = f"/v1/workspaces/{ws}/webhooks/{bad['id']}/dead-letters"

        async def dead_count() -> int:
            return (await api.get(letters)).json()["total"]

        deadline = time.monotonic() + 20
        while await dead_count() < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        items = (await api.get(letters)).json()["items"]
        assert sorted(i["event"]["id"] for i in items) == sorted(ids)
        assert {i["reason"] for i in items} == {"max_attempts: http_5xx"} and items[0]["status_class"] == "5xx"
        assert (await api.get(f"/v1/workspaces/{ws}/webhooks/{good['id']}/dead-letters")).json()["total"] == 0
        assert (await api.get(f"/v1/workspaces/{ws}/webhook/dead-letters")).json()["total"] == 0
        metrics = (await api.get("/metrics", headers=OPERATOR)).text
        (gauge,) = [line for line in metrics.splitlines() if line.startswith("wa_webhook_dead_letters ")]
        assert float(gauge.split()[1]) >= 3, "the operator's gauge counts endpoints' dead letters"

        dead.status = 200
        before = len(dead.deliveries)
        replayed = await api.post(f"{letters}/replay", json={})
        assert replayed.json() == {"replayed": 3}
        await _until(lambda: len(dead.deliveries) >= before + 3)
        again = [orjson.loads(d.body)["id"] for d in dead.deliveries[before:]]
        assert sorted(again) == sorted(ids) and await dead_count() == 0
        assert len(_events(alive)) == 3, "the healthy endpoint got each event once"


async def test_a_deleted_endpoint_gets_nothing_more_and_its_queue_is_gone(api, service) -> None:
    ws = "hooks-endpoints-delete"
    with running_receiver() as hook:
        endpoint = await _create(api, ws, url=hook.url)
        (first,) = await _publish(service, ws, [MESSAGE_RECEIVED])
        await hook.wait_for(lambda d: d.headers.get("webhook-id") == first)
        path = f"/v1/workspaces/{ws}/webhooks/{endpoint['id']}"
        assert (await api.delete(path)).status_code == 204
        assert (await api.get(path)).status_code == 404
        assert (await api.delete(path)).status_code == 404
        await asyncio.sleep(1.2)  # the dispatcher's view of the lanes
        await _publish(service, ws, [MESSAGE_RECEIVED] * 2)
        await asyncio.sleep(1.5)
        assert len(hook.deliveries) == 1
        redis = connect(service.config.redis_url)
        try:
            assert not await redis.exists(keys.webhook_queue(ws, endpoint["id"]))
        finally:
            await redis.aclose()
