"""Zero lost, zero duplicated, whatever crashes: counted on the simulator phone's inbox.

1. Chromium is SIGKILLed while a stream of messages is being posted and sent (with 40 ms to the
   server and back, so one is in flight when it dies): the session
   reconnects from its saved state, a new sender incarnation XAUTOCLAIMs what the old one
   held, and every message ends on the phone exactly once. The one message whose send the
   crash may cut in half cannot be checked against a page that no longer exists; it is
   failed as `unconfirmed` rather than sent again (the design's at-most-once), and counted.
2. The SessionActor is killed (ray.kill) mid-stream: the sender keeps going; nothing lost.
3. Reclaimed intents are resolved against the live page, case by case: a key the page
   knows is recorded sent (no resend); a key the same page never took is sent under that
   key; an intent from a page document that is gone is failed `unconfirmed`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import ray

from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect
from wa_ray.supervisors.session_supervisor import actor_name
from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import FINAL, duplicates, inbox, message, put_pacing, send, wait_status
from tests.procs import chromium_under
from wa_ray import NAMESPACE, SUPERVISOR_NAME

WS = "msg-crash"
PHONE, TO = "15552250001", "15552250002"


def _host_pid() -> int:
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
    return ray.get(ray.get_actor(names[0], namespace=NAMESPACE).ping.remote())["pid"]


async def _post_stream(api, prefix: str, n: int, ids: list[str]) -> None:
    for i in range(n):
        ids.append((await send(api, WS, TO, f"{prefix}-{i:03d}", session_id="c1"))["message_id"])
        await asyncio.sleep(0.01)


async def _settle(api, ids: list[str], timeout: float = 90.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    out = []
    for mid in ids:
        out.append(await wait_status(api, WS, mid, FINAL, timeout=max(1.0, deadline - time.monotonic())))
    return out


async def test_browser_and_actor_crashes_lose_and_duplicate_nothing(api, phone_api, service) -> None:
    await put_pacing(api, WS, enabled=False)
    async with collect_events(await stream_url(api, service.base_url, WS)) as events:
        await link_session(api, phone_api, events, WS, "c1", PHONE)
        await asyncio.sleep(0.5)  # the auth state is saved right after ready: a crash restores without QR

        # --- 1. the browser dies mid-stream; 40 ms to WhatsApp's server and back, so a send is in flight
        await phone_api.put(f"/_phone/{PHONE}/config", json={"latency_ms": 40})
        ids: list[str] = []
        poster = asyncio.create_task(_post_stream(api, "browser", 100, ids))
        await events.wait_for(lambda e: len([x for x in events.of_type("message.sent")]) >= 25, timeout=60)
        browser = chromium_under(_host_pid(), "")
        os.kill(browser[0], signal.SIGKILL)
        killed_after = len(events.of_type("message.sent"))
        await poster
        records = await _settle(api, ids)
        bodies = [m["body"] for m in await inbox(phone_api, TO)]
        texts = {r["message_id"]: f"browser-{i:03d}" for i, r in enumerate(records)}
        on_phone = [b for b in bodies if b.startswith("browser-")]
        assert not duplicates(on_phone), duplicates(on_phone)
        unconfirmed = []
        for r in records:
            seen = on_phone.count(texts[r["message_id"]])
            if r["status"] == "failed":
                assert r["reason"].startswith("unconfirmed"), r
                unconfirmed.append((r["message_id"], seen))
                assert seen <= 1
            else:
                assert seen == 1, (r, seen)
        assert len(unconfirmed) <= 1, unconfirmed
        lost = len(records) - len(on_phone)
        print(f"\nbrowser SIGKILL after {killed_after} sent: accepted {len(records)}, on phone {len(on_phone)}, "
              f"duplicated 0, unconfirmed {len(unconfirmed)} (on phone: {[s for _, s in unconfirmed]}), "
              f"not on phone {lost}")
        assert lost == sum(1 for _, s in unconfirmed if s == 0)
        await phone_api.put(f"/_phone/{PHONE}/config", json={"latency_ms": 0})

        # --- 2. the lifecycle's owner dies mid-stream; the page and its sender live in the BrowserHost.
        # With actor hosting that is the SessionActor; a grain has no process of its own, so the
        # control-plane process that dies is the supervisor (Ray restarts it; it adopts the grains).
        ids2: list[str] = []
        poster = asyncio.create_task(_post_stream(api, "actor", 60, ids2))
        await asyncio.sleep(0.3)
        if service.settings.session_hosting == "actor":
            ray.kill(ray.get_actor(actor_name(WS, "c1"), namespace=NAMESPACE), no_restart=True)
        else:
            ray.kill(ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE), no_restart=False)
        await poster
        records2 = await _settle(api, ids2)
        on_phone2 = [m["body"] for m in await inbox(phone_api, TO) if m["body"].startswith("actor-")]
        assert sorted(on_phone2) == sorted(f"actor-{i:03d}" for i in range(60))
        assert all(r["status"] in ("sent", "delivered", "read") for r in records2)
        print(f"{service.settings.session_hosting} owner killed: accepted 60, on phone {len(on_phone2)}, duplicated 0, lost 0")


async def test_reclaimed_intents_resolve_against_the_page(api, phone_api, service) -> None:
    """A dead sender's pending entries are XAUTOCLAIMed and each intent is judged by the live page."""
    ws, phone, to = "msg-reclaim", "15552260001", "15552260002"
    await put_pacing(api, ws, enabled=False)
    redis = connect(service.config.redis_url)
    stream = keys.queue(ws, "r1", "bulk")
    try:
        async with collect_events(await stream_url(api, service.base_url, ws)) as events:
            await link_session(api, phone_api, events, ws, "r1", phone)
            out = await send(api, ws, to, "already out", session_id="r1")
            # `read` is the last ack the phone sends: rewriting the record before it arrived let that
            # late ack move the rewritten `sending` intent on to `read`, past the `sent` asserted below
            await wait_status(api, ws, out["message_id"], {"read"})
        doc = await redis.hget(keys.message(ws, out["message_id"]), "doc")
        await redis.set(keys.sender_alive("alivebeef"), "r1@alivebeef", ex=60)

        # messages as a crashed sender leaves them: `sending`, intent recorded, in that sender's pending list
        async def intent(text: str | None, key: str, page_doc: str, owner: str = "deadbeef") -> str:
            if text is None:
                mid = out["message_id"]  # A: really sent; the page knows its key
            else:  # queued on a session waiting for its QR scan, so no sender reads it; handed to r1 below
                mid = (await send(api, ws, to, text, session_id="parked", priority="bulk"))["message_id"]
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.message(ws, mid), mapping={"status": "sending", "session_id": "r1", "owner": owner,
                                                          "doc": page_doc, **({"wa_key": key} if key else {})})
                pipe.xadd(stream, {"m": mid})
                pipe.xreadgroup(keys.QUEUE_GROUP, f"r1@{owner}", {stream: ">"})
                await pipe.execute()
            return mid

        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "parked"})).status_code == 201
        a = await intent(None, "", doc)
        b = await intent("intent only", "3EB0FEEDFACE0001", doc)
        c = await intent("lost page", "3EB0FEEDFACE0002", "a-document-that-died")
        d = await intent("owner alive", "3EB0FEEDFACE0003", doc, owner="alivebeef")

        # the live sender's periodic XAUTOCLAIM takes them over (idle >= 5 s) and resolves each one
        assert (await wait_status(api, ws, a, {"sent"}, timeout=30))["status"] == "sent"
        got_b = await wait_status(api, ws, b, {"sent", "delivered", "read"}, timeout=30)
        got_c = await wait_status(api, ws, c, {"failed"}, timeout=30)
        assert got_b["wa_message_id"].endswith("_3EB0FEEDFACE0001")
        assert got_c["reason"].startswith("unconfirmed")
        await asyncio.sleep(1)
        assert (await message(api, ws, d))["status"] == "sending"  # its owner is alive: left alone
        await redis.delete(keys.sender_alive("alivebeef"))
        await wait_status(api, ws, d, {"sent", "delivered", "read"}, timeout=30)

        bodies = [m["body"] for m in await inbox(phone_api, to)]
        assert sorted(bodies) == ["already out", "intent only", "owner alive"]  # once each; "lost page" never
        assert [m["id"] for m in await inbox(phone_api, to) if m["body"] == "intent only"] == ["3EB0FEEDFACE0001"]
        consumers = {c["name"] for c in await redis.xinfo_consumers(stream, keys.QUEUE_GROUP)}
        assert "r1@deadbeef" not in consumers and "r1@alivebeef" not in consumers  # claimed, then dropped
    finally:
        await api.delete(f"/v1/workspaces/{ws}/sessions/parked")
        await redis.aclose()

