"""A person's erase (storage/subject_erasure.py) at the store level, on one Redis and on a 3-master Redis Cluster
(tests/redis_cluster.py): every trace of the number in the workspace goes, found under the workspace's own
prefix (`wa:{ws}:`, one slot), and the same number in the workspace whose id extends this one's stays."""

from __future__ import annotations

import orjson
import pytest

from tests.redis_cluster import cluster_redis, redis_cluster_url  # noqa: F401  (fixtures)
from wa_ray.storage import campaigns, keys
from wa_ray.storage.subject_erasure import SubjectEraser

pytestmark = pytest.mark.asyncio

WS, NEIGHBOUR = "ahy", "ahyx"
NUMBER, OTHER = "15550001234", "15550009999"
MID, CID = "msg_0123456789abcdef", "cmp_1"


@pytest.fixture(params=["redis", "cluster_redis"])
def store(request: pytest.FixtureRequest):
    """The test's Redis: one server, then a cluster."""
    return request.getfixturevalue(request.param)


async def _seed(redis, ws: str) -> None:
    """NUMBER's traces in `ws` (one of each kind), and OTHER's message beside them."""
    jid = f"{NUMBER}@c.us"
    await redis.hset(keys.message(ws, MID), mapping={"workspace_id": ws, "to": NUMBER,
                                                      "content": orjson.dumps({"media_id": "med_out"}).decode()})
    await redis.rpush(keys.message_history(ws, MID), "{}")
    await redis.hset(keys.message(ws, "msg_other"), mapping={"workspace_id": ws, "to": OTHER})
    await redis.set(keys.media(ws, "med_out"), "{}")
    await redis.set(keys.wa_message(ws, f"true_{jid}_ABC"), MID)
    await redis.set(keys.idempotency(ws, "idem-1"), f"{MID}|fingerprint")
    await redis.set(keys.seen(ws, f"false_{jid}_DEF"), 1)
    await redis.xgroup_create(keys.events(ws), keys.WEBHOOK_GROUP, id="0", mkstream=True)
    for data in ({"message_id": MID, "status": "sent"}, {"from": NUMBER, "media": {"media_id": "med_in"}},
                 {"message_id": "msg_other", "to": OTHER}):
        await redis.xadd(keys.events(ws), {"e": orjson.dumps({"data": data}).decode()})
    await redis.rpush(keys.dead_letters(ws), orjson.dumps({"event": {"data": {"to": NUMBER}}}))
    await redis.rpush(keys.endpoint_dead_letters(ws, "we_1"), orjson.dumps({"event": {"data": {"to": OTHER}}}))
    await redis.zadd(keys.contacts(ws, "s1"), {jid: 0, f"{OTHER}@c.us": 0})
    await redis.sadd(keys.repliers(ws, "s1", "20260101"), jid)
    await redis.set(keys.campaign_contact(ws, "s1", jid), CID)
    await redis.zadd(campaigns.list_key(ws), {CID: 1})
    await redis.set(keys.campaign_replied(ws, CID, jid), 1)
    await redis.rpush(campaigns.recipients_key(ws, CID), orjson.dumps({"to": NUMBER, "v": {}}),
                      orjson.dumps({"to": OTHER, "v": {}}))
    await redis.sadd(campaigns.phones_key(ws, CID), NUMBER, OTHER)
    await redis.sadd(campaigns.open_key(ws, CID), MID)


async def _snapshot(redis, ws: str) -> dict[str, object]:
    """Every key of `ws` with what it holds."""
    read = {"string": redis.get, "hash": redis.hgetall, "set": lambda n: redis.smembers(n),
            "zset": lambda n: redis.zrange(n, 0, -1), "list": lambda n: redis.lrange(n, 0, -1), "stream": redis.xrange}
    out: dict[str, object] = {}
    async for name in redis.scan_iter(match=keys.workspace_prefix(ws) + "*"):
        value = await read[await redis.type(name)](name)
        out[name] = sorted(value) if isinstance(value, set) else value
    return out


async def test_the_erase_takes_the_number_out_of_its_workspace_only(store) -> None:
    redis = store
    for ws in (WS, NEIGHBOUR):
        await _seed(redis, ws)
    neighbour = await _snapshot(redis, NEIGHBOUR)
    deleted_media: list[tuple[str, str]] = []

    async def delete_media(ws: str, media_id: str) -> None:
        deleted_media.append((ws, media_id))
        await redis.delete(keys.media(ws, media_id))

    counts = await SubjectEraser(redis, delete_media).erase(WS, NUMBER)

    # markers: the WhatsApp-id mapping, the Idempotency-Key, the dedupe mark, the contact and reply stamps
    assert counts.as_dict() == {"messages": 1, "media": 1, "events": 2, "contacts": 2, "campaign_recipients": 1,
                                "dead_letters": 1, "markers": 5}, counts
    assert sorted(deleted_media) == [(WS, "med_in"), (WS, "med_out")]
    left = await _snapshot(redis, WS)
    assert NUMBER not in orjson.dumps(left).decode() and MID not in orjson.dumps(left).decode(), left
    assert keys.message(WS, "msg_other") in left and OTHER in orjson.dumps(left).decode()
    assert await redis.xlen(keys.events(WS)) == 1
    assert await _snapshot(redis, NEIGHBOUR) == neighbour

    again = await SubjectEraser(redis, delete_media).erase(WS, NUMBER)
    assert set(again.as_dict().values()) == {0}, again
