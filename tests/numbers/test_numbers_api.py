"""Issue #15 part A against the running service (real Ray, Serve, Chromium, Redis): the numbers' listing, the
primary number and the default sender, the plan limits (max numbers, messages per UTC day) under concurrency,
and a send path that makes no plan-limit call for a workspace without a daily limit."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from tests.events import collect_events
from tests.flows import link_session, stream_url
from tests.messages.helpers import message, put_pacing, send, wait_status
from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect

SNAPSHOT_S = 1.2  # the ingress caches a workspace's provider snapshot for 1 s (WA_PROVIDER_CACHE_TTL_S)
RECIPIENT = "15553590001"


def _ws(tag: str) -> str:
    return f"num-{tag}-{secrets.token_hex(3)}"


async def _sessions(api: httpx.AsyncClient, ws: str) -> dict[str, dict[str, Any]]:
    listed = await api.get(f"/v1/workspaces/{ws}/sessions")
    assert listed.status_code == 200, listed.text
    return {s["session_id"]: s for s in listed.json()}


async def _primary(api: httpx.AsyncClient, ws: str, sid: str, value: bool) -> dict[str, Any]:
    put = await api.put(f"/v1/workspaces/{ws}/sessions/{sid}", json={"primary": value})
    assert put.status_code == 200, put.text
    return put.json()


async def _default_sender(api: httpx.AsyncClient, ws: str) -> str:
    await asyncio.sleep(SNAPSHOT_S)  # a snapshot taken after the change, whichever replica answers
    accepted = await send(api, ws, RECIPIENT, "who sends this?")
    return (await message(api, ws, accepted["message_id"]))["session_id"]


async def _limits(api: httpx.AsyncClient, ws: str, **body: Any) -> dict[str, Any]:
    put = await api.put(f"/v1/workspaces/{ws}/limits", json={"max_numbers": None, "messages_per_day": None, **body})
    assert put.status_code == 200, put.text
    return put.json()


async def _delete_all(api: httpx.AsyncClient, ws: str) -> None:
    for sid in await _sessions(api, ws):
        await api.delete(f"/v1/workspaces/{ws}/sessions/{sid}")


async def test_primary_and_the_roomiest_number_send_by_default(api: httpx.AsyncClient, phone_api: httpx.AsyncClient,
                                                               service) -> None:
    ws = _ws("primary")
    await put_pacing(api, ws, typing=False)
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, "n1", "15553591001")
        await link_session(api, phone_api, events, ws, "n2", "15553591002")
    try:
        listed = await _sessions(api, ws)
        for sid, phone in (("n1", "15553591001"), ("n2", "15553591002")):
            s = listed[sid]
            assert s["me"] == phone and s["push_name"] == f"Sim {phone}" and s["primary"] is False
            assert s["created_at"] <= s["last_connected_at"] <= time.time()

        # n1 spends some of its hourly room: the roomier n2 takes a send without session_id
        for i in range(2):
            sent = await send(api, ws, RECIPIENT, f"from n1 {i}", session_id="n1")
            await wait_status(api, ws, sent["message_id"], {"sent", "delivered", "read"})
        assert await _default_sender(api, ws) == "n2"

        made = await _primary(api, ws, "n1", True)
        assert made["primary"] is True and made["session_id"] == "n1"
        assert {sid: s["primary"] for sid, s in (await _sessions(api, ws)).items()} == {"n1": True, "n2": False}
        assert await _default_sender(api, ws) == "n1", "the primary, though it has less room"

        # a primary that cannot send (never linked) gives way to the roomiest connected number
        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "n3"})).status_code == 201
        await _primary(api, ws, "n3", True)
        assert {sid: s["primary"] for sid, s in (await _sessions(api, ws)).items()} == {
            "n1": False, "n2": False, "n3": True}, "one primary per workspace"
        assert await _default_sender(api, ws) == "n2"

        cleared = await _primary(api, ws, "n1", False)
        assert cleared["primary"] is False and (await _sessions(api, ws))["n3"]["primary"] is True, \
            "false on a number that is not the primary changes nothing"
        assert (await api.delete(f"/v1/workspaces/{ws}/sessions/n3")).status_code == 204
        assert not any(s["primary"] for s in (await _sessions(api, ws)).values()), "deleting the primary clears it"
        await _primary(api, ws, "n2", True)
        assert (await _primary(api, ws, "n2", False))["primary"] is False
        assert not any(s["primary"] for s in (await _sessions(api, ws)).values())
    finally:
        await _delete_all(api, ws)


async def test_max_numbers_is_a_409_that_says_current_and_max(api: httpx.AsyncClient, service) -> None:
    ws = _ws("max")
    assert (await _limits(api, ws, max_numbers=2))["max_numbers"] == 2
    try:
        for sid in ("a", "b"):
            assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": sid})).status_code == 201
        over = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "c"})
        assert over.status_code == 409, over.text
        assert over.json()["error"]["code"] == "plan_limit"
        assert over.json()["error"]["details"] == {"limit": "max_numbers", "current": 2, "max": 2}
        assert (await api.get(f"/v1/workspaces/{ws}/sessions/c")).status_code == 404, "nothing left behind"
        again = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "a"})
        assert again.status_code == 201, "an existing session id is still idempotent"
        got = (await api.get(f"/v1/workspaces/{ws}/limits")).json()
        assert got == {"max_numbers": 2, "messages_per_day": None, "usage": {"numbers": 2, "messages_today": 0}}
        assert (await api.delete(f"/v1/workspaces/{ws}/sessions/b")).status_code == 204
        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "c"})).status_code == 201
        await _limits(api, ws)  # null: unlimited again
        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "d"})).status_code == 201
    finally:
        await _delete_all(api, ws)


async def test_concurrent_creations_never_pass_max_numbers(api: httpx.AsyncClient, service) -> None:
    ws = _ws("race")
    await _limits(api, ws, max_numbers=2)
    try:
        answers = await asyncio.gather(*(api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": f"r{i}"})
                                         for i in range(6)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 201, 409, 409, 409, 409], [a.text for a in answers]
        assert len(await _sessions(api, ws)) == 2
    finally:
        await _delete_all(api, ws)


async def test_messages_per_day(api: httpx.AsyncClient, service) -> None:
    ws = _ws("day")
    assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "q"})).status_code == 201
    try:
        await _limits(api, ws, messages_per_day=3)
        await asyncio.sleep(SNAPSHOT_S)
        first = await send(api, ws, RECIPIENT, "one", session_id="q", idempotency_key="k0")
        await send(api, ws, RECIPIENT, "two", session_id="q", idempotency_key="k1")
        repeat = await send(api, ws, RECIPIENT, "one", session_id="q", idempotency_key="k0")
        assert repeat["message_id"] == first["message_id"]
        assert (await api.get(f"/v1/workspaces/{ws}/limits")).json()["usage"]["messages_today"] == 2, \
            "an idempotent repeat is counted once"
        await send(api, ws, RECIPIENT, "three", session_id="q")
        over = await api.post(f"/v1/workspaces/{ws}/messages", json={"to": RECIPIENT, "text": "four", "session_id": "q"})
        assert over.status_code == 409, over.text
        assert over.json()["error"] == {"code": "plan_limit", "message": over.json()["error"]["message"],
                                        "details": {"limit": "messages_per_day", "current": 3, "max": 3}}
        at_limit = await send(api, ws, RECIPIENT, "two", session_id="q", idempotency_key="k1")
        assert at_limit["status"] == "queued", "a repeat of an accepted message is answered as the first, at the limit"

        await _limits(api, ws, messages_per_day=10)
        answers = await asyncio.gather(*(api.post(f"/v1/workspaces/{ws}/messages",
                                                  json={"to": RECIPIENT, "text": f"race {i}", "session_id": "q"})
                                         for i in range(20)))
        assert sorted(a.status_code for a in answers) == [202] * 7 + [409] * 13, "never over the max"
        assert (await api.get(f"/v1/workspaces/{ws}/limits")).json()["usage"]["messages_today"] == 10

        await _limits(api, ws)
        await asyncio.sleep(SNAPSHOT_S)
        await send(api, ws, RECIPIENT, "unlimited again", session_id="q")
    finally:
        await _delete_all(api, ws)


async def _plan_commands(redis: aioredis.Redis, ws: str, sends: Any) -> tuple[int, int, float]:
    """Run `sends` under MONITOR: how many commands named the workspace's day counter (the charge, which
    names the limits too), how many read the limits otherwise, and how long the sends took."""
    seen: list[str] = []

    async def watch(ready: asyncio.Event) -> None:
        async with redis.monitor() as m:
            ready.set()
            while True:
                command = await m.next_command()
                if command.get("client_type") != "lua":  # what a client sent, not a script's own steps
                    seen.append(command["command"])

    ready = asyncio.Event()
    task = asyncio.get_running_loop().create_task(watch(ready))
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await sends()
    took = time.monotonic() - started
    await asyncio.sleep(0.2)
    task.cancel()
    day = sum(keys.plan_messages(ws, "") in c for c in seen)
    limits = sum(f" {keys.plan_limits(ws)}" in c and keys.plan_messages(ws, "") not in c for c in seen)
    return day, limits, took


async def test_an_unlimited_workspace_sends_without_a_plan_call(api: httpx.AsyncClient, service) -> None:
    free, capped = _ws("free"), _ws("capped")
    for ws in (free, capped):
        assert (await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": "h"})).status_code == 201
    await _limits(api, capped, messages_per_day=1000)
    await asyncio.sleep(SNAPSHOT_S)
    for ws in (free, capped):
        await send(api, ws, RECIPIENT, "warm-up (scripts loaded, snapshot cached)", session_id="h")
    redis = connect(service.config.redis_url)
    try:
        for ws, expected_day in ((free, 0), (capped, 20)):
            async def sends(ws: str = ws) -> None:
                for i in range(20):
                    await send(api, ws, RECIPIENT, f"hot {i}", session_id="h")

            day, limits, took = await _plan_commands(redis, ws, sends)
            assert day == expected_day, f"{ws}: {day} commands on the day counter"
            # the limits are read only with the snapshot (about once a second per replica), never per send
            assert limits <= 2 * (took / 1.0 + 2), f"{ws}: {limits} reads of the limits in {took:.1f} s"
    finally:
        await redis.aclose()
        for ws in (free, capped):
            await _delete_all(api, ws)
