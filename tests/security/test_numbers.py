"""A Cloud API number belongs to one workspace: attacks by a tenant on another tenant's number.

The attacker holds a workspace key of its own workspace A (and its own Meta app secret); the victim B
configured its number with the Cloud API simulator. Claiming B's number is 409 and changes nothing;
A moving off its own number never deletes B's mapping; and Meta webhooks signed with A's secret (for
A's number) can never change B's messages, whatever wamid or opaque id they name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from typing import Any

import httpx
import orjson
import pytest

from wa_ray.storage import keys
from tests.messages.helpers import APP_SECRET, cloud_config, send, wait_status

pytestmark = pytest.mark.asyncio

ATTACKER_SECRET = "attacker-app-secret-" + secrets.token_hex(8)


def _pnid() -> str:
    return "7" + str(secrets.randbelow(10**11)).zfill(11)


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _cloud(pnid: str, secret: str = APP_SECRET, **extra: Any) -> dict[str, Any]:
    """A Cloud API block (Meta's Graph URL, the default) that never sends: nothing is queued for it here."""
    return {"phone_number_id": pnid, "access_token": "tok-" + pnid, "app_secret": secret, **extra}


def _status_payload(pnid: str, wamid: str, status: str, opaque: str | None = None) -> bytes:
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                             "recipient_id": "15553330001"}
    if opaque:
        entry["biz_opaque_callback_data"] = opaque
    if status == "failed":
        entry["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "metadata": {"display_phone_number": "15550000000", "phone_number_id": pnid},
                                        "statuses": [entry]}}]}]})


def _signed(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "content-type": "application/json"}


async def _tenants(make_key, client_for, unique_ws: str) -> tuple[str, httpx.AsyncClient, str, httpx.AsyncClient]:
    a, b = unique_ws + "-a", unique_ws + "-b"
    return a, client_for(await make_key("workspace", a)), b, client_for(await make_key("workspace", b))


async def test_a_taken_number_is_409_and_stays_its_owners(make_key, client_for, unique_ws, live_redis, raw) -> None:
    a, attacker, b, victim = await _tenants(make_key, client_for, unique_ws)
    theirs, mine = _pnid(), _pnid()
    assert (await victim.put(f"/v1/workspaces/{b}/provider", json={"cloud": _cloud(theirs)})).status_code == 200

    # straight claim, and a claim riding on an otherwise ordinary config change
    for body in ({"cloud": _cloud(theirs, ATTACKER_SECRET)},
                 {"priority": "meta", "override": "meta",
                  "cloud": _cloud(theirs, ATTACKER_SECRET, verify_token="v" * 9)}):
        r = await attacker.put(f"/v1/workspaces/{a}/provider", json=body)
        assert _error(r) == (409, "number_taken"), r.text
        assert theirs not in r.text  # the answer does not echo the number either
    assert await live_redis.get(keys.meta_number(theirs)) == b
    assert (await attacker.get(f"/v1/workspaces/{a}/provider")).json()["cloud"] is None  # nothing was written

    # A's own number, then A moves off it and back to WhatsApp Web only: B's mapping is untouched
    assert (await attacker.put(f"/v1/workspaces/{a}/provider", json={"cloud": _cloud(mine, ATTACKER_SECRET)})
            ).status_code == 200
    assert await live_redis.get(keys.meta_number(mine)) == a
    assert (await attacker.put(f"/v1/workspaces/{a}/provider", json={"priority": "webjs"})).status_code == 200
    assert await live_redis.get(keys.meta_number(mine)) is None  # A's own release works
    assert await live_redis.get(keys.meta_number(theirs)) == b
    assert (await victim.get(f"/v1/workspaces/{b}/provider")).json()["cloud"]["phone_number_id"] == theirs

    # B's own webhooks still reach B: a status for B's number signed with B's secret is taken
    body = _status_payload(theirs, "wamid.unknown-" + secrets.token_hex(4), "delivered")
    assert (await raw.post("/webhooks/meta", content=body, headers=_signed(APP_SECRET, body))).status_code == 200

    # once B lets the number go, it is free: A may take it
    assert (await victim.put(f"/v1/workspaces/{b}/provider", json={"priority": "webjs"})).status_code == 200
    assert (await attacker.put(f"/v1/workspaces/{a}/provider", json={"cloud": _cloud(theirs, ATTACKER_SECRET)})
            ).status_code == 200
    assert await live_redis.get(keys.meta_number(theirs)) == a


async def test_release_never_deletes_another_workspaces_mapping(make_key, client_for, unique_ws, live_redis) -> None:
    """A config that still names B's number (as the one-owner rule's predecessor let happen) is released
    without touching B's mapping: a release deletes only a mapping that names the releasing workspace."""
    a, attacker, b, victim = await _tenants(make_key, client_for, unique_ws)
    theirs = _pnid()
    assert (await victim.put(f"/v1/workspaces/{b}/provider", json={"cloud": _cloud(theirs)})).status_code == 200
    assert (await attacker.put(f"/v1/workspaces/{a}/provider", json={"cloud": _cloud(_pnid(), ATTACKER_SECRET)})
            ).status_code == 200
    await live_redis.hset(keys.provider(a), "phone_number_id", theirs)  # a stale record naming B's number
    for body in ({"priority": "webjs"}, {"cloud": _cloud(_pnid(), ATTACKER_SECRET)}):
        assert (await attacker.put(f"/v1/workspaces/{a}/provider", json=body)).status_code == 200
        assert await live_redis.get(keys.meta_number(theirs)) == b


async def test_a_shared_verify_token_survives_one_workspace_leaving(raw, make_key, client_for, unique_ws) -> None:
    """One Meta app, one verify token, several numbers: A leaving does not end B's handshake."""
    a, attacker, b, victim = await _tenants(make_key, client_for, unique_ws)
    token = "shared-verify-" + secrets.token_hex(6)
    assert (await victim.put(f"/v1/workspaces/{b}/provider", json={"cloud": _cloud(_pnid(), verify_token=token)})
            ).status_code == 200
    assert (await attacker.put(f"/v1/workspaces/{a}/provider",
                               json={"cloud": _cloud(_pnid(), ATTACKER_SECRET, verify_token=token)})).status_code == 200
    assert (await attacker.put(f"/v1/workspaces/{a}/provider", json={"priority": "webjs"})).status_code == 200
    handshake = {"hub.mode": "subscribe", "hub.challenge": "4242", "hub.verify_token": token}
    r = await raw.get("/webhooks/meta", params=handshake)
    assert (r.status_code, r.text) == (200, "4242")
    assert (await victim.put(f"/v1/workspaces/{b}/provider", json={"priority": "webjs"})).status_code == 200
    assert (await raw.get("/webhooks/meta", params=handshake)).status_code == 403  # nobody has it now


async def test_racing_claims_give_the_number_to_one(make_key, client_for, unique_ws, live_redis) -> None:
    number = _pnid()
    tenants = [unique_ws + f"-r{i}" for i in range(6)]
    clients = [client_for(await make_key("workspace", ws)) for ws in tenants]
    answers = await asyncio.gather(*(c.put(f"/v1/workspaces/{ws}/provider", json={"cloud": _cloud(number)})
                                     for ws, c in zip(tenants, clients, strict=True)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 5, statuses
    winner = tenants[[r.status_code for r in answers].index(200)]
    assert await live_redis.get(keys.meta_number(number)) == winner


async def test_webhooks_of_one_workspace_never_touch_another_workspaces_messages(
        service, meta_app, api, make_key, client_for, unique_ws, raw) -> None:
    sim = meta_app
    a, attacker, b, victim = await _tenants(make_key, client_for, unique_ws)
    theirs, mine, to = _pnid(), _pnid(), "1555" + str(secrets.randbelow(10**7)).zfill(7)
    sim.control.register_phone_number(theirs, "tok-" + theirs)
    before = sim.control.config()["status_delays"]
    sim.control.set_status_delays(sent=0.0, delivered=None, read=None)  # B's message stays `sent`
    try:
        # B's number at the simulator (another Graph URL than Meta's: an admin's call)
        r = await api.put(f"/v1/workspaces/{b}/provider",
                          json={"priority": "meta", "cloud": cloud_config(sim, theirs, "tok-" + theirs)})
        assert r.status_code == 200, r.text
        assert (await attacker.put(f"/v1/workspaces/{a}/provider",
                                   json={"cloud": _cloud(mine, ATTACKER_SECRET)})).status_code == 200
        sim.control.inbound(to, theirs, "hello")  # opens the 24 h window for B's reply
        sent = await send(victim, b, to, "private to B")
        record = await wait_status(victim, b, sent["message_id"], {"sent"})
        wamid, mid = record["wa_message_id"], sent["message_id"]
        assert wamid
        await asyncio.sleep(0.5)  # B's own `sent` status webhook has come and gone
        history = (await victim.get(f"/v1/workspaces/{b}/messages/{mid}")).json()["history"]

        # A's own number, A's own secret: a valid webhook for A, naming B's wamid and B's message id
        for status in ("delivered", "read", "failed"):
            for opaque in (None, mid):
                body = _status_payload(mine, wamid, status, opaque)
                r = await raw.post("/webhooks/meta", content=body, headers=_signed(ATTACKER_SECRET, body))
                assert r.status_code == 200, r.text
        # B's number signed with A's secret is refused outright, statuses and inbound alike
        body = _status_payload(theirs, wamid, "read")
        assert _error(await raw.post("/webhooks/meta", content=body, headers=_signed(ATTACKER_SECRET, body))) == (
            403, "bad_signature")
        both = orjson.loads(_status_payload(mine, wamid, "read"))
        both["entry"] += orjson.loads(_status_payload(theirs, wamid, "read"))["entry"]
        body = orjson.dumps(both)  # A's number and B's in one payload: not one workspace's, refused
        r = await raw.post("/webhooks/meta", content=body, headers=_signed(ATTACKER_SECRET, body))
        assert r.status_code == 403

        await asyncio.sleep(0.5)
        after = (await victim.get(f"/v1/workspaces/{b}/messages/{mid}")).json()
        assert after["status"] == "sent" and after["history"] == history, after
        assert after["failover"] is False

        # the control: the same `read` status, for B's number under B's secret, does move it
        body = _status_payload(theirs, wamid, "read")
        assert (await raw.post("/webhooks/meta", content=body, headers=_signed(APP_SECRET, body))).status_code == 200
        await wait_status(victim, b, mid, {"read"}, timeout=10)
    finally:
        sim.control.set_status_delays(**before)
