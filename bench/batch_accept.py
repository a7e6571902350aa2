"""`python -m wa_ray.bench accept-batch --batches 20 --size 1000`: messages accepted per second, batched.

Issue 16's goal: `POST .../messages:batch` (up to 1,000 messages, each with its own Idempotency-Key and its
own result) accepting >= 10,000 messages/s on this machine. Measured through the whole service as a backend
calls it (HMAC signing, the Serve proxy, auth, the provider snapshot, per item: validation, routing, the
durable accept script; the answer's 1,000 results), against the baseline in the same run: the same messages
through `POST .../messages` one by one, `--concurrency` requests in flight (closed loop).

Phases, one after the other on one service with one linked session (pacing on, so the sender does not
compete for the CPU: the messages wait in its queue, as a backend's burst does):
* `single`: `--singles` messages, one POST each, `--concurrency` at a time;
* `batch`: `--batches` batches of `--size` messages, `--batch-concurrency` batches in flight.
For each: messages/s over the phase's wall time, latency per call (p50/p99), CPU ms per message of the
serving processes (Serve proxy, Ingress replica, Redis) and Redis commands per message. Every message carries
an Idempotency-Key (a batch item its own), as a campaign tool's would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.api import cpu_per_request, redis_per_request
from wa_ray.bench.machine import CpuAccount
from wa_ray.bench.output import Envelope, median, pct, progress, ratio, table, write
from wa_ray.bench.report import to_jsonable

GOAL_MSG_S = 10_000.0
SESSION = "s00"
RECIPIENT = "15557770000"


@dataclass(frozen=True)
class BatchAcceptConfig:
    batches: int = 20
    size: int = 1000
    batch_concurrency: int = 1
    singles: int = 2000
    concurrency: int = 32
    warmup_batches: int = 2
    out_dir: Path | None = None


def _item(tag: str, n: int) -> dict[str, Any]:
    return {"to": f"1555{n % 10_000_000:07d}", "text": f"bench {tag} {n}", "session_id": SESSION,
            "idempotency_key": f"{tag}-{n}"}


async def _closed_loop(calls: list[Any], concurrency: int, bar: Any, label: str) -> tuple[list[float], float, list]:
    """Run `calls` (each a coroutine factory answering the number of messages it got accepted), `concurrency`
    at a time: (latency ms per call, wall s, error texts)."""
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    task = bar.add_task(label, total=len(calls), info="")

    async def worker() -> None:
        while not queue.empty():
            call = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                await call()
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            latencies.append((time.perf_counter() - t0) * 1000)
            bar.update(task, advance=1)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, errors


async def measure(cfg: BatchAcceptConfig, harness: Any, live: Any, console: Console) -> dict[str, Any]:
    from wa_ray.bench.harness import WORKSPACE

    await live.link(1)
    path = f"/v1/workspaces/{WORKSPACE}/messages"
    run = f"{time.time():.0f}"

    def single(n: int) -> Any:
        async def call() -> None:
            item = _item(f"s{run}", n)
            key = item.pop("idempotency_key")
            r = await live.api.post(path, json=item, headers={"Idempotency-Key": key})
            if r.status_code != 202:
                raise RuntimeError(f"{r.status_code} {r.text[:100]}")
        return call

    def batch(b: int) -> Any:
        async def call() -> None:
            items = [_item(f"b{run}-{b}", n) for n in range(cfg.size)]
            r = await live.api.post(path + ":batch", json={"messages": items}, timeout=120)
            if r.status_code != 200 or r.json()["accepted"] != cfg.size:
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")
        return call

    phases: dict[str, Any] = {}
    with progress(console) as bar:
        await _closed_loop([batch(-1 - w) for w in range(cfg.warmup_batches)], 1, bar, "warm-up")
        plan = {"single": ([single(n) for n in range(cfg.singles)], cfg.concurrency, cfg.singles),
                "batch": ([batch(b) for b in range(cfg.batches)], cfg.batch_concurrency, cfg.batches * cfg.size)}
        for name, (calls, concurrency, messages) in plan.items():
            cpu0, redis0 = harness.cpu.snapshot(), await asyncio.to_thread(harness.redis_commandstats)
            lat, wall, errors = await _closed_loop(calls, concurrency, bar, f"{name} x{len(calls)}")
            cpu = CpuAccount.diff(cpu0, harness.cpu.snapshot())
            redis1 = await asyncio.to_thread(harness.redis_commandstats)
            ok = messages - (len(errors) * (cfg.size if name == "batch" else 1))
            phases[name] = {
                "calls": len(calls), "concurrency": concurrency, "messages": messages, "accepted": ok,
                "wall_s": round(wall, 3), "msg_per_s": round(ok / wall, 1) if wall else None,
                "call_ms": {"p50": median(lat), "p99": pct(lat, 99), "max": round(max(lat), 2) if lat else None},
                "cpu_ms_per_message": cpu_per_request(cpu, messages, "wa-ray"),
                "redis_per_message": redis_per_request(redis0, redis1, messages),
                "machine_busy_cores": cpu.get("system_busy_cores"), "errors": errors[:10]}
            console.print(f"{name}: {phases[name]['msg_per_s']} msg/s, call p50 {phases[name]['call_ms']['p50']} ms")
    return phases


def run_batch_accept(cfg: BatchAcceptConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.bench.harness import Harness, HarnessOptions, Live

    env = Envelope("accept-batch")
    harness = Harness(HarnessOptions(sessions=1, pacing=True))
    console.print("wa-ray: starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    phases: dict[str, Any] = {}
    try:
        env.machine = to_jsonable(harness.machine())

        async def body() -> dict[str, Any]:
            async with Live(harness, webhook=False) as live:
                return await measure(cfg, harness, live, console)

        phases = asyncio.run(body())
    finally:
        env.cleanup = to_jsonable(harness.stop())
    env.results = {"config": {k: v for k, v in vars(cfg).items() if k != "out_dir"}, "phases": phases}
    single, batched = phases.get("single", {}), phases.get("batch", {})
    env.results["batch_over_single"] = ratio(batched.get("msg_per_s"), single.get("msg_per_s"))
    rate = batched.get("msg_per_s")
    env.goal(f"messages accepted per second in batches of {cfg.size}", f">= {GOAL_MSG_S:,.0f}/s", f"{rate}/s",
             rate is not None and rate >= GOAL_MSG_S)
    env.notes.append("closed loop; every message with its own Idempotency-Key; CPU of the serving processes "
                     "(Serve proxy, Ingress replica, Redis) per message; the bench's own client not included")
    rows = [[name, p["calls"], p["concurrency"], p["messages"], p["msg_per_s"], p["call_ms"]["p50"],
             p["call_ms"]["p99"], p["cpu_ms_per_message"].get("serving"), p["redis_per_message"].get("commands")]
            for name, p in phases.items()]
    body = "\n".join(["## Result", "", table(["phase", "calls", "in flight", "messages", "msg/s", "call p50 ms",
                                              "call p99 ms", "CPU ms/msg (serving)", "Redis cmds/msg"], rows), "",
                      f"batch / single: {env.results['batch_over_single']}", ""])
    env.finish()
    return env, write(env, body, cfg.out_dir or Path(__file__).resolve().parent / "results")


def summary(env: Envelope) -> Any:
    from rich.table import Table

    t = Table(title="wa-ray accept: batch vs single")
    for column in ("phase", "msg/s", "call p50 ms", "call p99 ms", "CPU ms/msg"):
        t.add_column(column)
    for name, p in env.results.get("phases", {}).items():
        t.add_row(name, str(p["msg_per_s"]), str(p["call_ms"]["p50"]), str(p["call_ms"]["p99"]),
                  str(p["cpu_ms_per_message"].get("serving")))
    return t
