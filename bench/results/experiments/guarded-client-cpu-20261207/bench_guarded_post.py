"""Client CPU per webhook POST through GuardedClient, against a loopback 204 server in another process.

The client side is the dispatcher's own path: `GuardedClient` (wa_ray/egress_http.py) with a guard that allows
loopback only (as tests/unit/test_media_fetch.py builds it), and `post()` from actors/webhook_post.py (sign,
stream, drain). The server is a minimal HTTP/1.1 keep-alive responder (asyncio Protocol, uvloop when present)
in a child process, so its CPU is not in the figure; it counts the TCP connections it accepted (GET /stats).

    .venv/bin/python bench/results/experiments/guarded-client-cpu-20261207/bench_guarded_post.py \
        --impl before|after --posts 20000 --concurrency 32 --runs 3 [--keepalive N] [--json out.json]

CPU is the client process's user+system time (time.process_time) over the measured posts, after a warm-up
that fills the pool; the figure per run is CPU / posts; the median of the runs is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import typing

HERE = os.path.dirname(os.path.abspath(__file__))
BODY_BYTES = 600  # about a message-status event as the dispatcher posts it


# ------------------------------------------------------------------ server (child process)
class _Hook(asyncio.Protocol):
    accepted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        self.buf = bytearray()
        _Hook.accepted += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            del self.buf[:total]
            if head.startswith(b"get /stats"):
                body = str(_Hook.accepted).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            else:
                self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


def serve() -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Hook, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


BEFORE_COMMIT = "11813e9"  # the last commit before SocketStream (wa_ray/egress_http.py)

# ------------------------------------------------------------------ client (this process)
def _client_class(impl: str) -> type:
    """`after`: the repo's wa_ray/egress_http.py; `before`: that module as of BEFORE_COMMIT (read from git into a
    temporary file, not kept as a copy here)."""
    if impl == "after":
        from wa_ray.egress_http import GuardedClient
        return GuardedClient
    import importlib.util
    import tempfile
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:wa_ray/egress_http.py"], cwd=HERE, check=True,
                            capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "egress_http_before.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("egress_http_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GuardedClient  # type: ignore[no-any-return]


async def one_run(url: str, posts: int, concurrency: int, keepalive: int | None, impl: str) -> dict[str, float]:
    import httpx

    from wa_ray.actors.webhook_post import Delivery, Destination, PostResult, post
    from wa_ray.egress import EgressGuard, EgressPolicy, no_dns_resolver
    GuardedClient = _client_class(impl)

    guard = EgressGuard(EgressPolicy.parse(["127.0.0.0/8"]), no_dns_resolver)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=keepalive)
    dest = Destination(f"{url}/hook", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", {"X-Tenant": "bench"})
    body = b'{"event":"message.status","data":{"status":"delivered","pad":"' + b"x" * BODY_BYTES + b'"}}'
    failed = 0

    async def worker(count: int, client: typing.Any) -> None:
        nonlocal failed
        for i in range(count):
            delivery = Delivery(f"evt_{id(client)}_{i}", "message.status", "ws_bench", body)
            result, _, _ = await post(client, dest, delivery)
            failed += result is not PostResult.OK

    async with GuardedClient(guard, timeout=10.0, limits=limits) as client:
        await asyncio.gather(*(worker(20, client) for _ in range(concurrency)))  # warm-up: fill the pool
        per = posts // concurrency
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(per, client) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pooled = len(client._transport._pool.connections)  # type: ignore[attr-defined]
        accepted = int((await client.get(f"{url}/stats")).text)
    done = per * concurrency
    return {"posts": done, "failed": failed, "cpu_us_per_post": cpu / done * 1e6, "wall_s": wall,
            "posts_per_s": done / wall, "connections_accepted": accepted, "pool_at_end": pooled}


def _profiled(run: typing.Coroutine[typing.Any, typing.Any, dict[str, float]], out: str) -> dict[str, float]:
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(asyncio.run, run)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(30)
    with open(out, "w") as f:
        f.write(text.getvalue())
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="client", choices=["client", "serve"])
    ap.add_argument("--posts", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keepalive", type=int, default=None, help="max_keepalive_connections (default: unbounded)")
    ap.add_argument("--impl", default="after", choices=["before", "after"])
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", default="", help="run once under cProfile, write the top functions here")
    args = ap.parse_args()
    if args.mode == "serve":
        serve()
        return
    runs = []
    for _ in range(args.runs):  # a fresh server each run, so its accepted count is this run's
        server = subprocess.Popen([sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            run = one_run(f"http://127.0.0.1:{port}", args.posts, args.concurrency, args.keepalive, args.impl)
            if args.profile:
                runs.append(_profiled(run, args.profile))
            else:
                runs.append(asyncio.run(run))
        finally:
            server.terminate()
            server.wait()
        print(json.dumps(runs[-1]), flush=True)
    summary = {
        "label": args.label, "impl": args.impl, "concurrency": args.concurrency, "keepalive": args.keepalive, "runs": runs,
        "median_cpu_us_per_post": statistics.median(r["cpu_us_per_post"] for r in runs),
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_posts_per_s": statistics.median(r["posts_per_s"] for r in runs),
        "pid": os.getpid(),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
