"""A stopped sender's heartbeat ends, even when its cancellation is lost.

On Python 3.11, asyncio.wait_for (which redis-py wraps around each command) returns the command's result
instead of raising when a cancel lands just as the command completes. A heartbeat that swallowed its
cancel that way kept beating for a sender that had stopped, and the chaos test caught two live senders of
one session: the stopped one's intents looked owned forever (actors/outbound.py `_first_send` leaves an
intent alone while its owner's heartbeat lives). Real Redis; the lost cancel is reproduced at the Redis
client (the outer edge) by a `set` that ignores a cancel arriving right after its reply.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from wa_ray.actors.outbound import HEARTBEAT_S, SessionSender
from wa_ray.config import RuntimeConfig
from wa_ray.crypto import MasterKey
from wa_ray.master_keys import write_key_file
from wa_ray.sessions.page import PageSession
from wa_ray.storage import keys


async def test_a_lost_cancel_does_not_keep_a_stopped_senders_heartbeat(bare_redis_url: str, tmp_path) -> None:
    redis = aioredis.Redis.from_url(bare_redis_url, decode_responses=True)
    write_key_file(tmp_path / "master.key", [MasterKey.from_b64(MasterKey.generate_b64())])
    config = RuntimeConfig(redis_url=bare_redis_url, web_url="http://127.0.0.1:9/", data_dir=str(tmp_path),
                           master_key_file=str(tmp_path / "master.key"), pacing=False, typing_delay=False)
    sender = SessionSender(redis, "hb-ws", "hb1", PageSession(None, config.web_url, None), config)  # type: ignore[arg-type]
    beats: list[float] = []
    original_set = redis.set

    async def set_that_loses_a_cancel(*args, **kwargs):  # what wait_for on 3.11 does at the wrong moment
        result = await original_set(*args, **kwargs)
        beats.append(asyncio.get_running_loop().time())
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            pass
        return result

    redis.set = set_that_loses_a_cancel  # type: ignore[method-assign]
    try:
        task = asyncio.get_running_loop().create_task(sender.run())
        while not beats:
            await asyncio.sleep(0.01)
        assert await redis.exists(keys.sender_alive(sender.epoch))
        sender.stop()
        task.cancel()  # lands while the heartbeat sits in its `set`: that cancel is lost
        try:
            await asyncio.wait_for(task, HEARTBEAT_S + 5)
        except asyncio.CancelledError:
            pass
        ended_at = len(beats)
        await asyncio.sleep(HEARTBEAT_S * 2 + 0.5)  # a heartbeat still running would beat twice more
        assert len(beats) == ended_at, "the heartbeat outlived its sender"
        assert not await redis.exists(keys.sender_alive(sender.epoch))
    finally:
        redis.set = original_set  # type: ignore[method-assign]
        await redis.aclose()
