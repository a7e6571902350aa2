"""Attacks on history sync over real HTTP: `GET/PUT /v1/workspaces/{ws}/sync-policy` and
`POST /v1/workspaces/{ws}/sessions/{sid}/sync`. Another workspace's policy and sessions are invisible (404,
as for ids that never existed), a read-only key can neither change the policy nor start a sync (403), bad
policy values are 422 in the error shape without echoing what was sent and store nothing, and a session
runs one sync at a time however many are asked for at once (the others 409 `sync_running`)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from tests.events import collect_events
from tests.flows import link_session, stream_url
from wa_ray.storage import keys

pytestmark = pytest.mark.asyncio

DEFAULT = {"days": 30, "max_chats": 500, "messages_per_chat": 50, "on_link": True}


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _policy(ws: str) -> str:
    return f"/v1/workspaces/{ws}/sync-policy"


def _sync(ws: str, sid: str) -> str:
    return f"/v1/workspaces/{ws}/sessions/{sid}/sync"


async def test_owner_reads_default_then_replaces_it(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    r = await owner.get(_policy(unique_ws))
    assert r.status_code == 200 and r.json() == DEFAULT, r.text
    edge = {"days": 365, "max_chats": 5000, "messages_per_chat": 0, "on_link": False}
    assert (await owner.put(_policy(unique_ws), json=edge)).json() == edge
    low = {"days": 1, "max_chats": 1, "messages_per_chat": 500, "on_link": True}
    assert (await owner.put(_policy(unique_ws), json=low)).json() == low
    r = await owner.put(_policy(unique_ws), json={"days": 7})  # PUT replaces: omitted fields are defaults
    assert r.json() == {**DEFAULT, "days": 7}
    assert (await owner.get(_policy(unique_ws))).json() == {**DEFAULT, "days": 7}


async def test_another_workspace_is_404_for_policy_and_sync(make_key, client_for, unique_ws) -> None:
    victim_ws = unique_ws
    victim = client_for(await make_key("workspace", victim_ws))
    assert (await victim.put(_policy(victim_ws), json={"days": 3})).status_code == 200
    assert (await victim.post(f"/v1/workspaces/{victim_ws}/sessions", json={"session_id": "s1"})).status_code == 201
    attacker_ws = f"ws-{secrets.token_hex(4)}"
    attacker = client_for(await make_key("workspace", attacker_ws))
    reader_elsewhere = client_for(await make_key("read", f"ws-{secrets.token_hex(4)}"))
    nowhere = f"ws-{secrets.token_hex(4)}"
    for client in (attacker, reader_elsewhere):
        assert _error(await client.get(_policy(victim_ws))) == (404, "not_found")
        assert _error(await client.put(_policy(victim_ws), json={"days": 365})) == (404, "not_found")
        assert _error(await client.post(_sync(victim_ws, "s1"))) == (404, "not_found")
        # the same answers as a workspace that never existed
        assert _error(await client.get(_policy(nowhere))) == (404, "not_found")
        assert _error(await client.post(_sync(nowhere, "s1"))) == (404, "not_found")
    assert (await victim.get(_policy(victim_ws))).json() == {**DEFAULT, "days": 3}
    # the attacker's own workspace has no such session: 404 as well, never another tenant's
    assert _error(await attacker.post(_sync(attacker_ws, "s1"))) == (404, "session_not_found")
    for bad in ("..", "ws%20x", "a" * 200):
        r = await attacker.get(_policy(bad))
        assert r.status_code == 404 and bad not in r.text, (bad, r.status_code)
    await victim.delete(f"/v1/workspaces/{victim_ws}/sessions/s1")


async def test_read_only_key_cannot_put_or_sync(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    reader = client_for(await make_key("read", unique_ws))
    assert (await reader.get(_policy(unique_ws))).json() == DEFAULT  # it may read its own workspace
    assert _error(await reader.put(_policy(unique_ws), json={"on_link": False})) == (403, "forbidden")
    assert _error(await reader.post(_sync(unique_ws, "s1"))) == (403, "forbidden")
    assert (await owner.get(_policy(unique_ws))).json() == DEFAULT  # unchanged


async def test_sync_of_an_unknown_or_unlinked_session(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    assert _error(await owner.post(_sync(unique_ws, "nope"))) == (404, "session_not_found")
    for bad in ("..", "S%20x", "a" * 100):
        r = await owner.post(_sync(unique_ws, bad))
        assert r.status_code == 404 and bad not in r.text, (bad, r.text[:200])
    assert (await owner.post(f"/v1/workspaces/{unique_ws}/sessions", json={"session_id": "s1"})).status_code == 201
    r = await owner.post(_sync(unique_ws, "s1"))  # waiting for its QR scan: no page linked to read from
    assert _error(r) == (409, "session_unavailable") and r.json()["error"]["details"]["state"] != "connected"
    await owner.delete(f"/v1/workspaces/{unique_ws}/sessions/s1")


async def test_bad_policy_values_are_422_not_echoed_and_not_stored(make_key, client_for, unique_ws,
                                                                   live_redis) -> None:
    owner = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    good = {"days": 9, "max_chats": 90, "messages_per_chat": 9, "on_link": False}
    assert (await owner.put(_policy(unique_ws), json=good)).status_code == 200
    stored = await live_redis.get(keys.sync_policy(unique_ws))
    marker = "zq" + secrets.token_hex(6)
    bodies = [
        '{"days": 0}', '{"days": 366}', '{"days": -1}', '{"days": 1.5}', '{"days": "30"}', '{"days": true}',
        '{"days": null}', '{"days": NaN}', '{"days": Infinity}', '{"days": 1e309}', f'{{"days": {2**80}}}',
        '{"days": "\u0661\u0662"}', '{"days": [30]}',
        '{"max_chats": 0}', '{"max_chats": 5001}', '{"max_chats": "500"}', '{"max_chats": false}',
        '{"messages_per_chat": -1}', '{"messages_per_chat": 501}', '{"messages_per_chat": 50.5}',
        '{"on_link": "yes"}', '{"on_link": 1}', '{"on_link": 0}', '{"on_link": null}', f'{{"on_link": "{marker}"}}',
        f'{{"days": 3, "{marker}": 1}}', f'{{"days": 3, "extra": "{marker}"}}', '[1, 2]', '"x"', "null", "7",
    ]
    for body in bodies:
        r = await owner.put(_policy(unique_ws), content=body.encode(), headers={"content-type": "application/json"})
        assert _error(r) == (422, "validation_error"), (body[:60], r.status_code, r.text[:300])
        assert marker not in r.text, r.text
    for body in (b"{not json", b"\xff\xfe"):
        r = await owner.put(_policy(unique_ws), content=body, headers={"content-type": "application/json"})
        assert _error(r) == (400, "malformed_json"), (body, r.text[:200])
    assert await live_redis.get(keys.sync_policy(unique_ws)) == stored
    assert (await owner.get(_policy(unique_ws))).json() == good


async def test_a_stored_bad_policy_reads_as_the_default(make_key, client_for, unique_ws, live_redis) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    for raw_value in (b'{"days": 0, "max_chats": 1e400, "messages_per_chat": -5, "on_link": "no"}',
                      b'{"max_chats": 1208925819614629174706176}', b'{"days": true}', b"not json", b"[1]", b'"x"'):
        await live_redis.set(keys.sync_policy(unique_ws), raw_value)
        r = await owner.get(_policy(unique_ws))
        assert r.status_code == 200 and r.json() == DEFAULT, (raw_value, r.text)
    await live_redis.set(keys.sync_policy(unique_ws), b'{"days": 4, "max_chats": 0, "on_link": false}')
    assert (await owner.get(_policy(unique_ws))).json() == {**DEFAULT, "days": 4, "on_link": False}


async def test_concurrent_syncs_of_one_session_run_once(api, phone_api, service, make_key, client_for) -> None:
    ws, sid, number = f"sync-race-{secrets.token_hex(3)}", "s1", "15557140003"
    owner = client_for(await make_key("workspace", ws, rate_per_s=0))
    assert (await owner.put(_policy(ws), json={"on_link": False})).status_code == 200
    seeded = await phone_api.post(f"/_phone/{number}/history", json={
        "chats": 300, "messages_per_chat": 3, "groups": 2, "contacts": 50, "lid_contacts": 1, "lid_unknown": 1,
        "days": 10, "seed": 716})
    assert seeded.status_code == 200, seeded.text
    async with collect_events(await stream_url(api, service.base_url, ws)) as events:
        await link_session(api, phone_api, events, ws, sid, number)
        answers = await asyncio.gather(*(owner.post(_sync(ws, sid)) for _ in range(6)))
        started = [r for r in answers if r.status_code == 202]
        assert len(started) == 1, [(r.status_code, r.text[:100]) for r in answers]
        assert all(_error(r) == (409, "sync_running") for r in answers if r.status_code != 202)
        sync_id = started[0].json()["sync_id"]
        # a second wave while it still runs: refused too
        assert _error(await owner.post(_sync(ws, sid))) == (409, "sync_running")
        done = await events.wait_for(lambda e: e["type"] == "session.sync" and e["data"]["sync_id"] == sync_id
                                     and e["data"]["phase"] in ("done", "failed"), 180)
        assert done["data"]["phase"] == "done"
        runs = {e["data"]["sync_id"] for e in events.events if e["type"] == "session.sync"}
        assert runs == {sync_id}  # one run, never two interleaved
        # over: a new one may start
        again = await owner.post(_sync(ws, sid))
        assert again.status_code == 202 and again.json()["sync_id"] != sync_id, again.text
        await events.wait_for(lambda e: e["type"] == "session.sync" and e["data"]["sync_id"] == again.json()["sync_id"]
                              and e["data"]["phase"] == "done", 180)
