"""Open-loop HTTP load generator for `bench api`, in a process of its own (aiohttp on uvloop).

Request k is issued at t0 + k / rate whatever happened to earlier ones. Every
request is HMAC-signed with wa_ray.signing (the server may ignore it) and
carries an Idempotency-Key. Its own process and a light client: in the bench
process, httpx's pool with thousands of requests in flight against a slow
server burnt more CPU than the server under test, and the generator fell
seconds behind its schedule.

Prints JSON lines: {"ev": "progress", "issued", "done"} twice a second, then
{"ev": "result", "sched": [...], "sent": [...], "done": [...], "status": [...], "lag_ms": [...]}
(times in seconds from t0 of the measured phase; status an HTTP code or an exception name).

    python -m wa_ray.bench.loadgen --url http://127.0.0.1:8000/v1/workspaces/bench/messages --rate 200 --duration 30 \
        --key-id K --secret S --session s00 --to 15552000000 [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _phase(session: Any, args: argparse.Namespace, duration: float, label: str, report: bool) -> dict[str, Any]:
    import orjson

    from wa_ray.signing import signed_headers

    path = urlsplit(args.url).path
    n = max(1, int(args.rate * duration))
    sched: list[float] = [0.0] * n
    sent: list[float] = [0.0] * n
    done: list[float] = [0.0] * n
    status: list[Any] = [None] * n
    lag: list[float] = []
    loop = asyncio.get_running_loop()
    finished = {"n": 0}
    samples: dict[str, list[str]] = {}  # the first bodies of non-2xx answers, by status
    stop = asyncio.Event()

    async def one(k: int) -> None:
        body = orjson.dumps({"session_id": args.session, "to": args.to, "text": f"bench api {label} #{k:06d}",
                             "priority": "normal"})
        headers = signed_headers(args.key_id, args.secret, "POST", path, body)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = f"api-{label}-{args.tag}-{k}"
        sent[k] = time.perf_counter() - t0
        try:
            async with session.post(args.url, data=body, headers=headers) as resp:
                text = await resp.read()
                status[k] = resp.status
                if resp.status >= 300 and len(samples.setdefault(str(resp.status), [])) < 3:
                    samples[str(resp.status)].append(text[:400].decode(errors="replace"))
        except Exception as exc:  # noqa: BLE001 - a timeout or a refused connection is a result
            status[k] = type(exc).__name__
        done[k] = time.perf_counter() - t0
        finished["n"] += 1

    async def watch() -> None:
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.05)
            lag.append(round(max(0.0, (loop.time() - before - 0.05) * 1000), 3))

    async def tell() -> None:
        while not stop.is_set():
            if report:
                _emit({"ev": "progress", "phase": label, "issued": issued["n"], "done": finished["n"], "total": n})
            await asyncio.sleep(0.5)

    issued = {"n": 0}
    tasks = []
    helpers = [asyncio.create_task(watch()), asyncio.create_task(tell())]
    t0 = time.perf_counter()
    for k in range(n):
        at = k / args.rate
        sched[k] = at
        delay = at - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
        issued["n"] = k + 1
    await asyncio.gather(*tasks)
    stop.set()
    await asyncio.gather(*helpers)
    return {"sched": sched, "sent": sent, "done": done, "status": status, "lag_ms": lag, "error_bodies": samples}


async def main(args: argparse.Namespace) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.warmup > 0:
            await _phase(session, args, args.warmup, "warmup", report=False)
        result = await _phase(session, args, args.duration, "measure", report=True)
    _emit({"ev": "result", **result})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--session", default="s00")
    parser.add_argument("--to", default="15552000000")
    parser.add_argument("--tag", default=str(int(time.time())))
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=30.0)
    a = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(a))
