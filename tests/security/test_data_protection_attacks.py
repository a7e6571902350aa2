"""Data protection over real HTTP: erasing one person's data (`DELETE .../contacts/{number}/data`).

The data is written straight into the live service's Redis and media store through the stores the service
itself uses (no session needed: the erase reads what is stored, whoever wrote it); the erase then runs
through the Ingress, and the test reads Redis and the disk to prove what is gone and what is not.
"""

from __future__ import annotations

import secrets

import httpx
import orjson
import pytest

from wa_ray.events import MESSAGE_RECEIVED, Event
from wa_ray.ids import new_id
from wa_ray.sessions.media_access import media_store_for
from wa_ray.storage import campaigns, keys
from wa_ray.storage.events import EventLog
from wa_ray.storage.media import media_root
from wa_ray.storage.messages import MessageStore, OutboundMessage

pytestmark = pytest.mark.asyncio

ZERO = {"messages": 0, "media": 0, "events": 0, "contacts": 0, "campaign_recipients": 0, "dead_letters": 0,
        "markers": 0}


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]["code"]


def _erase(ws: str, number: str) -> str:
    return f"/v1/workspaces/{ws}/contacts/{number}/data"


def _number() -> str:
    return "1555" + "".join(secrets.choice("0123456789") for _ in range(7))


async def _seed(redis, service, ws: str, number: str) -> dict[str, object]:
    """One person's traces in `ws`: an outbound message with a media, its ack, an inbound message with a
    media, contact-log and reply entries, a campaign recipient, a dedupe mark, a dead letter."""
    media = media_store_for(redis, service.config)
    out_media = await media.put_bytes(ws, b"to them", mimetype="text/plain")
    in_media = await media.put_bytes(ws, b"from them", mimetype="text/plain")
    mid = new_id("msg")
    await MessageStore(redis).accept(OutboundMessage(mid, ws, "s1", number, "hi", "normal", kind="document",
                                                     content={"media_id": out_media.media_id}), None)
    await redis.set(keys.wa_message(ws, f"true_{number}@c.us_ABC{mid[-6:]}"), mid)
    events = EventLog(redis)
    await events.publish(Event("message.ack", ws, "s1", {"message_id": mid, "status": "delivered"}))
    await events.publish(Event(MESSAGE_RECEIVED, ws, "s1", {
        "wa_message_id": f"false_{number}@c.us_DEF", "from": number, "chat_id": f"{number}@c.us",
        "is_group": False, "kind": "image", "media": {"media_id": in_media.media_id, "status": "stored"}}))
    await redis.set(keys.seen(ws, f"false_{number}@c.us_DEF"), 1)
    await redis.zadd(keys.contacts(ws, "s1"), {f"{number}@c.us": 0})
    await redis.sadd(keys.repliers(ws, "s1", "20261206"), f"{number}@c.us")
    cid = f"cmp_{secrets.token_hex(4)}"
    await redis.zadd(campaigns.list_key(ws), {cid: 1})
    await redis.rpush(campaigns.recipients_key(ws, cid), orjson.dumps({"to": number, "v": {"name": "Ana"}}))
    await redis.sadd(campaigns.phones_key(ws, cid), number)
    await redis.sadd(campaigns.open_key(ws, cid), mid)
    await redis.set(keys.campaign_contact(ws, "s1", f"{number}@c.us"), cid)
    await redis.rpush(keys.dead_letters(ws), orjson.dumps({"event": {"id": "1-1", "data": {"to": number}}}))
    return {"mid": mid, "media": (out_media.media_id, in_media.media_id), "cid": cid}


async def _traces(redis, service, ws: str, number: str, seeded: dict[str, object]) -> list[str]:
    """Every place `number` (or what the seed wrote for it) still shows in `ws`."""
    found = []
    if await redis.exists(keys.message(ws, seeded["mid"]), keys.message_history(ws, seeded["mid"])):
        found.append("message")
    for media_id in seeded["media"]:
        if await redis.exists(keys.media(ws, media_id)) or (media_root(service.config.data_dir) / ws / media_id).exists():
            found.append(f"media {media_id}")
    for entry_id, fields in await redis.xrange(keys.events(ws)):
        if number in fields["e"] or seeded["mid"] in fields["e"]:
            found.append(f"event {entry_id}")
    async for name in redis.scan_iter(match=f"{keys.workspace_prefix(ws)}*{number}*", count=1000):
        found.append(name)
    for name in (keys.contacts(ws, "s1"), keys.repliers(ws, "s1", "20261206"),
                 campaigns.phones_key(ws, seeded["cid"])):
        kind = await redis.type(name)
        members = await (redis.zrange(name, 0, -1) if kind == "zset" else redis.smembers(name))
        found += [f"{name} {m}" for m in members if number in m]
    if await redis.sismember(campaigns.open_key(ws, seeded["cid"]), seeded["mid"]):
        found.append("campaign open message")
    for raw in await redis.lrange(campaigns.recipients_key(ws, seeded["cid"]), 0, -1):
        if number in raw:
            found.append("campaign recipient")
    for raw in await redis.lrange(keys.dead_letters(ws), 0, -1):
        if number in raw:
            found.append("dead letter")
    return found


async def test_erase_removes_one_persons_data_and_nothing_else(service, make_key, client_for, unique_ws,
                                                               live_redis) -> None:
    ws, neighbour = unique_ws, unique_ws + "x"
    number, other = _number(), _number()
    mine = await _seed(live_redis, service, ws, number)
    theirs = await _seed(live_redis, service, ws, other)  # another person in the same workspace
    same_elsewhere = await _seed(live_redis, service, neighbour, number)  # the same person, another workspace
    assert len(await _traces(live_redis, service, ws, number, mine)) >= 10  # the check sees the seed

    owner = client_for(await make_key("workspace", ws))
    r = await owner.delete(_erase(ws, number))
    assert r.status_code == 200, r.text
    # events: message.queued, its ack, the inbound message; markers: the WhatsApp-id mapping, the dedupe mark,
    # the campaign reply stamp
    assert r.json() == {"messages": 1, "media": 2, "events": 3, "contacts": 2, "campaign_recipients": 1,
                        "dead_letters": 1, "markers": 3}, r.json()
    assert await _traces(live_redis, service, ws, number, mine) == []
    # the campaign keeps its length (cursor and indexes stay right): a tombstone where the recipient was
    assert await live_redis.lrange(campaigns.recipients_key(ws, mine["cid"]), 0, -1) == ['{"to":"","v":{}}']

    # the other person in the same workspace, and the same person in the neighbour workspace, are intact
    for where, who, seeded in ((ws, other, theirs), (neighbour, number, same_elsewhere)):
        assert len(await _traces(live_redis, service, where, who, seeded)) >= 10, (where, who)

    # idempotent: a second erase finds nothing
    r = await owner.delete(_erase(ws, number))
    assert r.status_code == 200 and r.json() == ZERO, r.text

    # audited, with the number redacted to its last two digits
    entries = [orjson.loads(f["e"]) for _, f in await live_redis.xrevrange(keys.audit(), count=500)]
    erasures = [e for e in entries if e["route"] == "/v1/workspaces/{ws}/contacts/{number}/data"
                and e["workspace_id"] == ws]
    assert len(erasures) == 2 and all(e["status"] == 200 for e in erasures), erasures
    for entry in erasures:
        assert number not in orjson.dumps(entry).decode() and number[-6:] not in orjson.dumps(entry).decode()
        assert entry["params"]["number"] == "**" + number[-2:]
        assert entry["path"] == f"/v1/workspaces/{ws}/contacts/**{number[-2:]}/data"


async def test_erase_is_scoped_and_guarded(service, make_key, client_for, unique_ws, live_redis, raw) -> None:
    """Another tenant's key: 404 (as for a workspace that does not exist); a read-only key: 403; a
    malformed number: 422 without echo; none of them erase anything."""
    ws = unique_ws
    number = _number()
    seeded = await _seed(live_redis, service, ws, number)
    before = len(await _traces(live_redis, service, ws, number, seeded))
    attacker = client_for(await make_key("workspace", f"ws-{secrets.token_hex(4)}"))
    reader_elsewhere = client_for(await make_key("read", f"ws-{secrets.token_hex(4)}"))
    for client in (attacker, reader_elsewhere):
        assert _error(await client.delete(_erase(ws, number))) == (404, "not_found")
        assert _error(await client.delete(_erase(f"ws-{secrets.token_hex(4)}", number))) == (404, "not_found")
    reader = client_for(await make_key("read", ws))
    assert _error(await reader.delete(_erase(ws, number))) == (403, "forbidden")
    assert (await raw.delete(_erase(ws, number))).status_code == 401
    owner = client_for(await make_key("workspace", ws, rate_per_s=0))
    for bad in ("+" + number, "0" + number[1:], "12345", "1" * 16, "1555abc1234", "15551234567%00", "%2e%2e",
                f"{number}@c.us", "١٥٥٥١٢٣٤٥٦٧"):
        r = await owner.delete(_erase(ws, bad))
        assert r.status_code in (404, 422), (bad, r.status_code)
        if r.status_code == 422:
            assert _error(r)[1] in ("invalid_number", "validation_error") and bad not in r.text, (bad, r.text)
    assert len(await _traces(live_redis, service, ws, number, seeded)) == before



def _retention(ws: str) -> str:
    return f"/v1/workspaces/{ws}/retention"


BOUNDS = {"events_days": 30, "messages_days": 90, "audit_days": 365, "media_days": 30}


async def test_retention_owner_reads_and_replaces_within_the_bounds(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws, rate_per_s=0))
    r = await owner.get(_retention(unique_ws))
    assert r.status_code == 200 and r.json() == {**BOUNDS, "max": BOUNDS}, r.text  # no policy: the bounds
    r = await owner.put(_retention(unique_ws), json={"events_days": 7, "media_days": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {**BOUNDS, "events_days": 7, "media_days": 1, "max": BOUNDS}
    assert (await owner.get(_retention(unique_ws))).json()["events_days"] == 7
    for body in ({"events_days": 31}, {"audit_days": 366}, {"media_days": 3650}):
        r = await owner.put(_retention(unique_ws), json=body)
        assert _error(r) == (422, "retention_over_bound"), r.text
        assert r.json()["error"]["details"]["max"] == BOUNDS[next(iter(body))]
        assert str(next(iter(body.values()))) not in r.text
    for body in ({"events_days": 0}, {"events_days": "7"}, {"events_days": True}, {"events_days": 1.5},
                 {"events_days": 99999999999999999999}, {"unknown_days": 3}, {"media_days": -4}):
        r = await owner.put(_retention(unique_ws), json=body)
        assert r.status_code == 422, (body, r.text)
        assert "99999999999999999999" not in r.text and "unknown_days" not in r.text.replace('"loc"', "")
    assert (await owner.get(_retention(unique_ws))).json()["events_days"] == 7  # nothing bad was stored


async def test_retention_is_scoped_and_read_only_keys_cannot_change_it(make_key, client_for, unique_ws) -> None:
    owner = client_for(await make_key("workspace", unique_ws))
    assert (await owner.put(_retention(unique_ws), json={"audit_days": 30})).status_code == 200
    attacker = client_for(await make_key("workspace", f"ws-{secrets.token_hex(4)}"))
    reader_elsewhere = client_for(await make_key("read", f"ws-{secrets.token_hex(4)}"))
    for client in (attacker, reader_elsewhere):
        assert _error(await client.get(_retention(unique_ws))) == (404, "not_found")
        assert _error(await client.put(_retention(unique_ws), json={"audit_days": 1})) == (404, "not_found")
    reader = client_for(await make_key("read", unique_ws))
    assert (await reader.get(_retention(unique_ws))).json()["audit_days"] == 30
    assert _error(await reader.put(_retention(unique_ws), json={"audit_days": 1})) == (403, "forbidden")
    assert (await owner.get(_retention(unique_ws))).json()["audit_days"] == 30
