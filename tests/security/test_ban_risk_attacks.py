"""Ban risk: attacks by one workspace on another's policy and numbers, and hostile bodies, over real HTTP.

The attacker holds a key of its own workspace A; the victim B has a session whose number is paused by its
ban-risk score (its registry record and pause keys written straight into the service's Redis, as the
sender would). Another workspace's policy and sessions answer 404 like unknown ones and nothing of B's
changes; a read-only key cannot write; a bad body is 422 without a trace of the values it carried.
"""

from __future__ import annotations

import secrets

import httpx
import orjson
import pytest

from wa_ray.storage import keys
from wa_ray.storage.registry import SessionRegistry

pytestmark = pytest.mark.asyncio

MARK = 987_654_321  # a number no bound allows: the body that carried it must not echo it
TEXT_MARK = "zz-ban-risk-probe-zz"


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


async def _victim(live_redis, ws: str, sid: str) -> None:
    await SessionRegistry(live_redis).update(ws, sid, state="connected")
    await live_redis.set(keys.risk_paused(ws, sid), "1")
    await live_redis.set(keys.session_paused(ws, sid), "ban_risk|")
    await live_redis.set(keys.ban_risk_policy(ws), orjson.dumps({"daily_new_contacts": 7}))


async def test_another_workspace_cannot_read_put_or_resume(make_key, client_for, unique_ws, live_redis) -> None:
    victim, sid = f"{unique_ws}-b", "victim-1"
    await _victim(live_redis, victim, sid)
    attacker = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    attempts = [
        await attacker.get(f"/v1/workspaces/{victim}/ban-risk"),
        await attacker.put(f"/v1/workspaces/{victim}/ban-risk", json={"daily_new_contacts": 100_000}),
        await attacker.post(f"/v1/workspaces/{victim}/sessions/{sid}/resume"),
        await attacker.get(f"/v1/workspaces/{victim}/sessions/{sid}/ban-risk"),
        # the victim's session id under the attacker's own workspace is an unknown session there
        await attacker.post(f"/v1/workspaces/{unique_ws}/sessions/{sid}/resume"),
        await attacker.get(f"/v1/workspaces/{unique_ws}/sessions/{sid}/ban-risk"),
    ]
    assert [_error(r) for r in attempts] == [(404, "not_found")] * 6
    # nothing of the victim's changed
    assert await live_redis.exists(keys.risk_paused(victim, sid), keys.session_paused(victim, sid)) == 2
    assert not await live_redis.exists(keys.risk_cooldown(victim, sid))
    assert orjson.loads(await live_redis.get(keys.ban_risk_policy(victim))) == {"daily_new_contacts": 7}
    # the attacker's own policy is its own: the victim's cap does not show through
    own = await attacker.get(f"/v1/workspaces/{unique_ws}/ban-risk")
    assert own.status_code == 200 and own.json()["daily_new_contacts"] == 500


async def test_the_owner_resumes_its_own_number(make_key, client_for, unique_ws, live_redis) -> None:
    sid = "own-1"
    await _victim(live_redis, unique_ws, sid)
    owner = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    before = (await owner.get(f"/v1/workspaces/{unique_ws}/sessions/{sid}/ban-risk")).json()
    assert before["paused"] is True and before["cooldown"] is False
    resumed = await owner.post(f"/v1/workspaces/{unique_ws}/sessions/{sid}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["resumed"] == "ban_risk" and resumed.json()["cooldown_until"] is not None
    assert not await live_redis.exists(keys.risk_paused(unique_ws, sid), keys.session_paused(unique_ws, sid))
    after = (await owner.get(f"/v1/workspaces/{unique_ws}/sessions/{sid}/ban-risk")).json()
    assert after["paused"] is False and after["cooldown"] is True
    again = await owner.post(f"/v1/workspaces/{unique_ws}/sessions/{sid}/resume")
    assert again.status_code == 200 and again.json()["resumed"] is None  # nothing left to resume


async def test_a_read_only_key_cannot_write(make_key, client_for, unique_ws, live_redis) -> None:
    sid = "ro-1"
    await _victim(live_redis, unique_ws, sid)
    reader = client_for(await make_key("read", unique_ws, rate_per_s=0))
    assert (await reader.get(f"/v1/workspaces/{unique_ws}/ban-risk")).status_code == 200
    put = await reader.put(f"/v1/workspaces/{unique_ws}/ban-risk", json={"daily_new_contacts": 10})
    resume = await reader.post(f"/v1/workspaces/{unique_ws}/sessions/{sid}/resume")
    assert [_error(put), _error(resume)] == [(403, "forbidden")] * 2
    assert await live_redis.exists(keys.risk_paused(unique_ws, sid))


async def test_unsigned_requests_are_refused(raw, unique_ws) -> None:
    for response in (await raw.get(f"/v1/workspaces/{unique_ws}/ban-risk"),
                     await raw.put(f"/v1/workspaces/{unique_ws}/ban-risk", json={"enabled": False}),
                     await raw.post(f"/v1/workspaces/{unique_ws}/sessions/s1/resume")):
        assert _error(response)[0] == 401


BAD_BODIES = [
    {"daily_new_contacts": 0}, {"daily_new_contacts": MARK}, {"daily_new_contacts": str(MARK)},
    {"daily_new_contacts": True}, {"daily_new_contacts": 12.5},
    {"warn_at": [0]}, {"warn_at": [MARK]}, {"warn_at": [10, 20, 30, 40, 50, 60]}, {"warn_at": TEXT_MARK},
    {"warn_at": [70.5]}, {"warn_at": [str(MARK)]},
    {"pause_at": 0}, {"pause_at": MARK}, {"pause_at": TEXT_MARK}, {"pause_at": False},
    {"enabled": TEXT_MARK}, {"enabled": 1}, {"resume_cooldown_s": -MARK}, {"resume_cooldown_s": MARK},
    {"secret_field": TEXT_MARK}, [TEXT_MARK], TEXT_MARK,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: secrets.token_hex(2) if not isinstance(b, dict)
                         else next(iter(b)))
async def test_a_bad_policy_is_422_and_never_echoed(body, make_key, client_for, unique_ws, live_redis) -> None:
    client = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    response = await client.put(f"/v1/workspaces/{unique_ws}/ban-risk", json=body)
    assert _error(response) == (422, "validation_error"), response.text
    assert str(MARK) not in response.text and TEXT_MARK not in response.text
    assert not await live_redis.exists(keys.ban_risk_policy(unique_ws))  # nothing stored


async def test_a_malformed_or_unknown_session_is_404(make_key, client_for, unique_ws) -> None:
    client = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    for sid in ("nope", "..%2F..%2Fetc", "a" * 300):
        response = await client.post(f"/v1/workspaces/{unique_ws}/sessions/{sid}/resume")
        assert _error(response) == (404, "not_found"), sid
