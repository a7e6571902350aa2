"""Attacks on the numbers and plan-limit routes (issue #15 part A), over real HTTP on loopback against the
running service. The attacker holds a key of its own workspace (workspace or read role) or none; the victim
is another workspace with sessions, a primary and plan limits.

Cases: another workspace's session cannot be made primary or cleared by any path (404, nothing changes); a
read key cannot set a primary (403); a workspace key cannot set its own limits (403) nor read or set
another's (404); unsigned requests are 401; bad bodies are 422 and never echo what they sent; malformed ids
are 404, never a 500; and one workspace's limits and counts never apply to another.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.flows import provider_snapshot_expired
from wa_ray.storage import keys

MARK = "ECHO" + secrets.token_hex(6)  # a value no response may carry back
BIG = 987_654_321_987  # an out-of-bounds number, equally never echoed


def _ws(tag: str) -> str:
    return f"atk-{tag}-{secrets.token_hex(3)}"


@pytest.fixture
async def victim(api: httpx.AsyncClient) -> Any:
    """A workspace with two sessions (never linked), `v1` its primary, and plan limits."""
    ws = _ws("victim")
    for sid in ("v1", "v2"):
        created = await api.post(f"/v1/workspaces/{ws}/sessions", json={"session_id": sid})
        assert created.status_code == 201, created.text
    assert (await api.put(f"/v1/workspaces/{ws}/sessions/v1", json={"primary": True})).status_code == 200
    put = await api.put(f"/v1/workspaces/{ws}/limits", json={"max_numbers": 2, "messages_per_day": 5})
    assert put.status_code == 200, put.text
    yield ws
    for sid in ("v1", "v2"):
        await api.delete(f"/v1/workspaces/{ws}/sessions/{sid}")


async def _victim_state(api: httpx.AsyncClient, ws: str) -> tuple[dict[str, bool], dict[str, Any]]:
    sessions = {s["session_id"]: s["primary"] for s in (await api.get(f"/v1/workspaces/{ws}/sessions")).json()}
    return sessions, (await api.get(f"/v1/workspaces/{ws}/limits")).json()


async def test_another_workspaces_session_cannot_be_made_primary(api, make_key, client_for, victim) -> None:
    own = _ws("own")
    attacker = client_for(await make_key("workspace", own, rate_per_s=0))
    assert (await attacker.post(f"/v1/workspaces/{own}/sessions", json={"session_id": "mine"})).status_code == 201
    before = await _victim_state(api, victim)
    try:
        attempts = [
            ("put", f"/v1/workspaces/{victim}/sessions/v2", {"primary": True}),  # the victim's path
            ("put", f"/v1/workspaces/{victim}/sessions/v1", {"primary": False}),  # clearing theirs
            ("put", f"/v1/workspaces/{own}/sessions/v2", {"primary": True}),  # their sid under my workspace
            ("put", f"/v1/workspaces/{own}/sessions/v1", {"primary": False}),
        ]
        for method, path, body in attempts:
            answer = await attacker.request(method, path, json=body)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["error"]["code"] == "not_found" and victim not in answer.text
        assert await _victim_state(api, victim) == before, "nothing changed in the victim's workspace"
        assert not await _primary_key_named(api, own), "and no primary was set in the attacker's own"
    finally:
        await api.delete(f"/v1/workspaces/{own}/sessions/mine")


async def _primary_key_named(api: httpx.AsyncClient, ws: str) -> bool:
    return any(s["primary"] for s in (await api.get(f"/v1/workspaces/{ws}/sessions")).json())


async def test_a_read_key_cannot_set_a_primary(make_key, client_for, api, victim) -> None:
    reader = client_for(await make_key("read", victim, rate_per_s=0))
    before = await _victim_state(api, victim)
    refused = await reader.put(f"/v1/workspaces/{victim}/sessions/v2", json={"primary": True})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    listed = await reader.get(f"/v1/workspaces/{victim}/sessions")
    assert listed.status_code == 200 and {s["session_id"]: s["primary"] for s in listed.json()} == before[0]
    assert (await reader.get(f"/v1/workspaces/{victim}/limits")).status_code == 200, "any key of it reads them"
    assert await _victim_state(api, victim) == before


async def test_a_workspace_key_cannot_set_limits(make_key, client_for, api, victim) -> None:
    before = await _victim_state(api, victim)
    own_key = client_for(await make_key("workspace", victim, rate_per_s=0))
    for body in ({"max_numbers": None, "messages_per_day": None}, {"max_numbers": 100000, "messages_per_day": 1},
                 {"max_numbers": "x", MARK: MARK}):  # a bad body too: the key is refused before the body is read
        refused = await own_key.put(f"/v1/workspaces/{victim}/limits", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden" and MARK not in refused.text
    other = client_for(await make_key("workspace", _ws("other"), rate_per_s=0))
    for method in ("get", "put"):
        answer = await other.request(method, f"/v1/workspaces/{victim}/limits",
                                     json={"max_numbers": None, "messages_per_day": None})
        assert answer.status_code == 404, answer.text  # another workspace's limits are not even there
    assert await _victim_state(api, victim) == before


async def test_unsigned_requests_are_401(raw: httpx.AsyncClient, victim) -> None:
    for method, path, body in (("get", f"/v1/workspaces/{victim}/limits", None),
                               ("put", f"/v1/workspaces/{victim}/limits", {"max_numbers": None, "messages_per_day": None}),
                               ("put", f"/v1/workspaces/{victim}/sessions/v2", {"primary": True})):
        answer = await raw.request(method, path, json=body)
        assert answer.status_code == 401, answer.text


BAD_LIMITS: list[Any] = [
    {"max_numbers": 0, "messages_per_day": None},
    {"max_numbers": 100_001, "messages_per_day": None},
    {"max_numbers": None, "messages_per_day": 10_000_001},
    {"max_numbers": -1, "messages_per_day": None},
    {"max_numbers": BIG, "messages_per_day": BIG},
    {"max_numbers": "5", "messages_per_day": None},  # strings are not coerced
    {"max_numbers": 5.5, "messages_per_day": None},
    {"max_numbers": True, "messages_per_day": None},
    {"max_numbers": MARK, "messages_per_day": [MARK]},
    {"max_numbers": 3},  # both fields are required: a PUT replaces the limits
    {"max_numbers": 3, "messages_per_day": 3, MARK: MARK},  # unknown field
    [MARK], MARK, None, {},
]
BAD_PRIMARY: list[Any] = [{"primary": "yes"}, {"primary": 1}, {"primary": None}, {}, {"primary": MARK},
                          {"primary": True, MARK: MARK}, {"primary": True, "session_id": MARK}, [MARK]]


async def test_bad_bodies_are_422_without_echo(api: httpx.AsyncClient, victim) -> None:
    before = await _victim_state(api, victim)
    cases = [(f"/v1/workspaces/{victim}/limits", b) for b in BAD_LIMITS]
    cases += [(f"/v1/workspaces/{victim}/sessions/v2", b) for b in BAD_PRIMARY]
    for path, body in cases:
        answer = await api.put(path, json=body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "validation_error"
        assert MARK not in answer.text and str(BIG) not in answer.text, (body, answer.text)
    not_json = await api.put(f"/v1/workspaces/{victim}/limits", content=b'{"max_numbers": ' + MARK.encode(),
                             headers={"Content-Type": "application/json"})
    assert not_json.status_code in (400, 422) and MARK not in not_json.text
    assert await _victim_state(api, victim) == before, "no bad body changed anything"


async def test_malformed_ids_are_404_never_500(api: httpx.AsyncClient, victim) -> None:
    for sid in ("V1", "v1%00", "..%2Fv1", "a" * 65, "v1:x", "%2A"):
        answer = await api.put(f"/v1/workspaces/{victim}/sessions/{sid}", json={"primary": True})
        assert answer.status_code == 404, (sid, answer.text)
    for ws in ("Upper", "a" * 65, "ws:x", "%2A"):
        answer = await api.get(f"/v1/workspaces/{ws}/limits")
        assert answer.status_code == 404, (ws, answer.text)


async def test_limits_of_one_workspace_never_apply_to_another(api, make_key, client_for, live_redis, victim,
                                                             service) -> None:
    # the victim is at its max_numbers (2 of 2) and will be at its messages_per_day
    tenant = _ws("tenant")
    client = client_for(await make_key("workspace", tenant, rate_per_s=0))
    try:
        for sid in ("t1", "t2", "t3"):  # past the victim's max_numbers: none of it is the tenant's
            created = await client.post(f"/v1/workspaces/{tenant}/sessions", json={"session_id": sid})
            assert created.status_code == 201, created.text
        await provider_snapshot_expired(service)  # the victim's limit is in its snapshot by now
        for i in range(5):
            sent = await api.post(f"/v1/workspaces/{victim}/messages", json={"to": "15553597001", "text": f"v{i}",
                                                                            "session_id": "v1"})
            assert sent.status_code == 202, sent.text
        assert (await api.post(f"/v1/workspaces/{victim}/messages",
                               json={"to": "15553597001", "text": "over", "session_id": "v1"})).status_code == 409
        for i in range(8):  # the tenant has no limit: the victim's spent day is not its day
            sent = await client.post(f"/v1/workspaces/{tenant}/messages",
                                     json={"to": "15553597001", "text": f"t{i}", "session_id": "t1"})
            assert sent.status_code == 202, sent.text
        limits = (await client.get(f"/v1/workspaces/{tenant}/limits")).json()
        assert limits == {"max_numbers": None, "messages_per_day": None, "usage": {"numbers": 3, "messages_today": 0}}
        assert not [k async for k in live_redis.scan_iter(match=keys.plan_messages(tenant, "*"))], \
            "no day counter for a workspace without a daily limit"
        assert (await api.get(f"/v1/workspaces/{victim}/limits")).json()["usage"] == {"numbers": 2, "messages_today": 5}
    finally:
        for sid in ("t1", "t2", "t3"):
            await api.delete(f"/v1/workspaces/{tenant}/sessions/{sid}")
