"""`python -m wa_ray.bench recovery`: how long linked sessions take to be connected again after each fault, with no QR.

With N sessions linked through the real path (QR on SSE, phone API scan), one
fault at a time, each after every session is connected and quiet again:

* `actor`: `ray.kill` of one SessionActor (`session:bench:s00`); the supervisor
  notices and starts a new one, which takes over the live page.
* `actor-all`: the same for every session's actor at once. With host hosting
  (the default, `WA_SESSION_HOSTING=host`) a session has no actor of its own:
  both are recorded as not applicable, and `host` is the fault that kills a
  session's owner.
* `host`: SIGKILL of the node's BrowserHost process (Playwright driver, every
  page, every grain); Ray restarts it and every session reopens from saved
  state.
* `browser`: SIGKILL of the node's Chromium main process (the one without
  `--type=` under the BrowserHost); every session reopens from its saved,
  encrypted auth state.
* `serve`: `ray.kill` of the Ingress Serve replica; measured until the API
  answers again (signed `GET .../sessions` -> 200), then sessions are checked.
* `redis`: SIGKILL of the embedded Redis and a start on the same port and data
  dir (AOF); measured until `POST /messages` is accepted again, then one
  message per session must be sent and acked (seen on SSE, or by its status).
* `service`: the whole service stopped and started again on the same data dir
  (like tests/scenarios/service_restart.py), with `--service-sessions` linked.

"Connected again" for a session is the first `session.status` event with
state `connected` stamped after the fault (SSE; the events are also read back
after an SSE reconnect, since ids resume) - or, for the faults where the
session never leaves `connected` (serve, redis), the registry says so. QR
codes are counted from the SSE stream: every `session.qr` after the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from wa_ray.bench.output import Envelope, loadavg, machine_without_service, median, pct, progress, table, write
from wa_ray.bench.report import to_jsonable

FAULTS = ("actor", "actor-all", "browser", "host", "serve", "redis", "service")
GOALS_S = {"actor": 5.0, "browser": 10.0, "host": 10.0, "service": 60.0}


@dataclass(frozen=True)
class RecoveryConfig:
    sessions: int = 10
    service_sessions: int = 50
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    timeout_s: float = 180.0
    out_dir: Path | None = None
    link_concurrency: int = 4


class Ctx:
    """What every fault needs: the harness, the live client, and the sessions in play."""

    def __init__(self, harness: Any, live: Any, console: Console, timeout_s: float) -> None:
        self.harness, self.live, self.console, self.timeout_s = harness, live, console, timeout_s

    @property
    def sids(self) -> list[str]:
        return [link.session_id for link in self.live.links]

    async def registry(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        from wa_ray.bench.harness import WORKSPACE

        r = await self.live.api.get(f"/v1/workspaces/{WORKSPACE}/sessions", timeout=timeout)
        r.raise_for_status()
        return list(r.json())

    async def all_connected(self, quiet_s: float = 1.0, timeout_s: float | None = None) -> None:
        """Every session connected in the registry, and nothing moved for `quiet_s`."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        want = set(self.sids)
        while time.monotonic() < deadline:
            try:
                states = {s["session_id"]: s["state"] for s in await self.registry()}
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(0.5)
                continue
            if all(states.get(sid) == "connected" for sid in want):
                before = self.live.timeline.sse_events
                await asyncio.sleep(quiet_s)
                if self.live.timeline.sse_events == before:
                    return
                continue
            await asyncio.sleep(0.2)
        raise TimeoutError(f"sessions not all connected: {states}")

    def connected_at(self, sid: str, after_ts: float) -> float | None:
        """Service-clock ts of the first `connected` status of sid stamped after `after_ts`."""
        for e in self.live.timeline.session_events.get(sid, []):
            if e["type"] == "session.status" and e["data"].get("state") == "connected" and float(e["ts"]) > after_ts:
                return float(e["ts"])
        return None

    def qr_after(self, after_ts: float, sids: list[str] | None = None) -> int:
        return sum(1 for sid in (sids or self.sids) for e in self.live.timeline.session_events.get(sid, [])
                   if e["type"] == "session.qr" and float(e["ts"]) > after_ts)

    def events_after(self, sid: str, after_ts: float) -> list[str]:
        return [f"{e['type']}:{e['data'].get('state', '')}" for e in self.live.timeline.session_events.get(sid, [])
                if float(e["ts"]) > after_ts]

    async def wait_connected_events(self, sids: list[str], after_ts: float) -> dict[str, float | None]:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            got = {sid: self.connected_at(sid, after_ts) for sid in sids}
            if all(v is not None for v in got.values()):
                return got
            await asyncio.sleep(0.05)
        return {sid: self.connected_at(sid, after_ts) for sid in sids}


def _times(got: dict[str, float | None], t0: float) -> dict[str, Any]:
    xs = [v - t0 for v in got.values() if v is not None]
    missing = [k for k, v in got.items() if v is None]
    return {"all_connected_s": round(max(xs), 2) if xs and not missing else None,
            "per_session_s": {"n": len(xs), "p50": median(xs), "p95": pct(xs, 95), "max": round(max(xs), 2) if xs else None},
            "not_reconnected": missing}


# ------------------------------------------------------------------ faults
def _host_pid() -> int:
    import ray

    from wa_ray import NAMESPACE

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
    return int(ray.get(ray.get_actor(names[0], namespace=NAMESPACE).ping.remote(), timeout=30)["pid"])


async def fault_actor(ctx: Ctx, all_of_them: bool) -> dict[str, Any]:
    import ray

    from wa_ray.supervisors.session_supervisor import actor_name
    from wa_ray import NAMESPACE

    from wa_ray.bench.harness import WORKSPACE

    if ctx.harness.service.settings.session_hosting != "actor":
        return {"not_applicable": "host hosting: sessions are grains in the BrowserHost, with no SessionActor "
                                  "to kill; the `host` fault kills their owner"}
    victims = ctx.sids if all_of_them else ctx.sids[:1]
    handles = [ray.get_actor(actor_name(WORKSPACE, sid), namespace=NAMESPACE) for sid in victims]
    before = {s["session_id"]: s.get("restarts", 0) for s in await ctx.registry()}
    t0 = time.time()
    for h in handles:
        ray.kill(h, no_restart=True)
    got = await ctx.wait_connected_events(victims, t0)
    out = {"killed": f"ray.kill of {len(victims)} SessionActor(s)", **_times(got, t0)}
    await ctx.all_connected()
    after = {s["session_id"]: s for s in await ctx.registry()}
    out["restarts_counted"] = sum(1 for sid in victims if after[sid].get("restarts", 0) > before.get(sid, 0))
    out["resumed_live_page"] = sum(1 for sid in victims for e in ctx.live.timeline.session_events.get(sid, [])
                                   if float(e["ts"]) > t0 and e["type"] == "session.status"
                                   and e["data"].get("reason") == "resumed live page")
    out["others_disturbed"] = [sid for sid in ctx.sids if sid not in victims and ctx.events_after(sid, t0)]
    out["qr_after"] = ctx.qr_after(t0)
    return out


async def fault_browser(ctx: Ctx) -> dict[str, Any]:
    from wa_ray.bench.memory import chromium_kinds, descendants, is_chromium, process_table

    host_pid = _host_pid()
    table_ = process_table()
    mains = [pid for pid in descendants(host_pid, table_)
             if is_chromium(table_[pid]) and not any(a.startswith("--type=") for a in " ".join(table_[pid].argv).split())]
    if len(mains) != 1:
        return {"error": f"expected one Chromium main process under BrowserHost {host_pid}, found {mains}"}
    before = chromium_kinds(descendants(host_pid, table_), table_)
    t0 = time.time()
    os.kill(mains[0], signal.SIGKILL)
    got = await ctx.wait_connected_events(ctx.sids, t0)
    out = {"killed": f"SIGKILL Chromium main pid {mains[0]} (under BrowserHost {host_pid})", **_times(got, t0)}
    await ctx.all_connected()
    table_ = process_table()
    out["chromium_before"] = before
    out["chromium_after"] = chromium_kinds(descendants(host_pid, table_), table_)
    out["qr_after"] = ctx.qr_after(t0)
    return out


async def fault_host(ctx: Ctx) -> dict[str, Any]:
    from wa_ray.bench.memory import chromium_kinds, descendants, process_table

    host_pid = _host_pid()
    before = chromium_kinds(descendants(host_pid, process_table()), process_table())
    t0 = time.time()
    os.kill(host_pid, signal.SIGKILL)
    got = await ctx.wait_connected_events(ctx.sids, t0)
    out = {"killed": f"SIGKILL BrowserHost pid {host_pid} ({ctx.harness.service.settings.session_hosting} hosting)",
           **_times(got, t0)}
    await ctx.all_connected()
    new_pid = _host_pid()
    table_ = process_table()
    out["host_restarted"] = new_pid != host_pid
    out["chromium_before"] = before
    out["chromium_after"] = chromium_kinds(descendants(new_pid, table_), table_)
    out["qr_after"] = ctx.qr_after(t0)
    return out


async def _api_back(ctx: Ctx, t0: float, probe: Any) -> tuple[float | None, int, list[str]]:
    """Poll until `probe()` answers as hoped; returns (seconds after t0, failed probes, sample errors)."""
    failures, errors = 0, []
    deadline = time.monotonic() + ctx.timeout_s
    while time.monotonic() < deadline:
        try:
            if await probe():
                return round(time.time() - t0, 2), failures, errors
            failures += 1
        except Exception as exc:  # noqa: BLE001 - every failure mode of an outage is a data point
            failures += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
        await asyncio.sleep(0.05)
    return None, failures, errors


async def fault_serve(ctx: Ctx) -> dict[str, Any]:
    import ray

    from wa_ray.bench.harness import WORKSPACE

    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "serve" and "Ingress" in a["name"] and "REPLICA" in a["name"].upper()]
    if len(replicas) != 1:
        return {"error": f"expected one Ingress replica, found {replicas}"}
    victim = replicas[0]["name"]
    base = ctx.harness.base_url
    from wa_ray.signing import HmacAuth

    from wa_ray.bench.harness import ADMIN_KEY_ID

    async with httpx.AsyncClient(base_url=base, auth=HmacAuth(ADMIN_KEY_ID, ctx.harness.admin_secret),
                                 timeout=2.0) as probe_client:
        async def probe() -> bool:
            r = await probe_client.get(f"/v1/workspaces/{WORKSPACE}/sessions")
            return r.status_code == 200

        reconnects_before = ctx.live.sse_reconnects
        t0 = time.time()
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        back_s, failures, errors = await _api_back(ctx, t0, probe)
    now = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
           if a["namespace"] == "serve" and "Ingress" in a["name"] and "REPLICA" in a["name"].upper()]
    out: dict[str, Any] = {"killed": f"ray.kill of Serve replica {victim}", "api_answers_again_s": back_s,
                           "failed_probes": failures, "probe_errors": errors, "replicas_after": now}
    await ctx.all_connected()
    out["sessions_connected_after"] = sum(1 for s in await ctx.registry() if s["state"] == "connected")
    out["sse_reconnects"] = ctx.live.sse_reconnects - reconnects_before
    out["qr_after"] = ctx.qr_after(t0)
    out["all_connected_s"] = back_s  # sessions never left `connected`; the outage is the API's
    return out


async def _send_round(ctx: Ctx, label: str) -> dict[str, Any]:
    """One message per session; every one must be sent and acked (SSE, or its status by the API)."""
    from wa_ray.bench.harness import WORKSPACE

    t0 = time.time()
    ids: dict[str, str] = {}
    errors = []
    for link in ctx.live.links:
        r = await ctx.live.api.post(f"/v1/workspaces/{WORKSPACE}/messages",
                                    json={"session_id": link.session_id, "to": link.recipient,
                                          "text": f"bench recovery {label} {link.session_id}"},
                                    headers={"Idempotency-Key": f"recovery-{label}-{link.session_id}-{t0}"})
        if r.status_code == 202:
            ids[link.session_id] = r.json()["message_id"]
        else:
            errors.append(f"{link.session_id}: {r.status_code} {r.text[:120]}")
    deadline = time.monotonic() + 45
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        pending = [sid for sid, mid in ids.items()
                   if not (ctx.live.timeline.messages.get(mid) and ctx.live.timeline.messages[mid].ack_at)]
        if not pending:
            break
        await asyncio.sleep(0.25)
    acked_sse = sum(1 for mid in ids.values() if ctx.live.timeline.messages.get(mid)
                    and ctx.live.timeline.messages[mid].ack_at)
    for sid, mid in ids.items():
        r = await ctx.live.api.get(f"/v1/workspaces/{WORKSPACE}/messages/{mid}")
        statuses[sid] = r.json().get("status", "?") if r.status_code == 200 else f"HTTP {r.status_code}"
    done = [st for st in statuses.values() if st in ("sent", "delivered", "read")]
    stuck = {}
    for sid, st in statuses.items():
        if st not in ("sent", "delivered", "read") and len(stuck) < 3:
            r = await ctx.live.api.get(f"/v1/workspaces/{WORKSPACE}/messages/{ids[sid]}")
            stuck[sid] = r.json() if r.status_code == 200 else r.text[:300]
    return {"accepted": len(ids), "rejected": errors, "acked_on_sse": acked_sse,
            "sent_or_better_by_api": len(done), "statuses": sorted(set(statuses.values())),
            "took_s": round(time.time() - t0, 2), "unsent_records": stuck}


async def _sweep(ctx: Ctx, tag: str) -> dict[str, Any]:
    """Ordinary calls a backend makes, through different processes (Ingress, supervisor, actors): any non-2xx."""
    from wa_ray.bench.harness import WORKSPACE

    api = ctx.live.api
    base = f"/v1/workspaces/{WORKSPACE}"
    calls = [("GET sessions", api.get(f"{base}/sessions")),
             ("GET session", api.get(f"{base}/sessions/{ctx.sids[0]}")),
             ("POST stream-token", api.post(f"{base}/stream-tokens")),
             ("POST create session", api.post(f"{base}/sessions", json={"session_id": f"sweep-{tag}"})),
             ("GET readyz", api.get("/readyz"))]
    failed, codes = [], {}
    for name, call in calls:
        try:
            r = await call
            codes[name] = r.status_code
            if r.status_code >= 300:
                failed.append(f"{name}: {r.status_code} {r.text[:160]}")
        except httpx.HTTPError as exc:
            codes[name] = type(exc).__name__
            failed.append(f"{name}: {type(exc).__name__}")
    if codes.get("POST create session") == 201:
        with contextlib.suppress(httpx.HTTPError):
            await api.delete(f"{base}/sessions/sweep-{tag}")
    return {"codes": codes, "failed": failed}


async def fault_redis(ctx: Ctx) -> dict[str, Any]:
    from wa_ray.bench.harness import WORKSPACE

    service = ctx.harness.service
    if service is None or service.redis is None:
        return {"error": "not an embedded Redis"}
    link = ctx.live.links[0]
    seq = {"n": 0}

    async def probe() -> bool:
        seq["n"] += 1
        r = await ctx.live.api.post(f"/v1/workspaces/{WORKSPACE}/messages",
                                    json={"session_id": link.session_id, "to": link.recipient,
                                          "text": f"bench recovery redis probe {seq['n']}"},
                                    headers={"Idempotency-Key": f"redis-probe-{time.time()}-{seq['n']}"}, timeout=2.0)
        return r.status_code == 202

    t0 = time.time()
    service.redis.kill()
    killed_s = time.time() - t0
    service.redis.start()
    restarted_s = round(time.time() - t0, 2)
    back_s, failures, errors = await _api_back(ctx, t0, probe)
    out: dict[str, Any] = {"killed": f"SIGKILL embedded redis-server, started again on port {service.redis.port} "
                                     f"(AOF, same data dir)", "redis_down_s": restarted_s,
                           "kill_s": round(killed_s, 3), "post_messages_accepted_again_s": back_s,
                           "failed_probes": failures, "probe_errors": errors}
    out["api_sweeps_after"] = sweeps = []
    clean_at = None
    for k in range(20):  # the same ordinary calls, again and again, until none fails
        sweep = await _sweep(ctx, f"r{k}")
        sweeps.append(sweep)
        if not sweep["failed"]:
            clean_at = round(time.time() - t0, 2)
            break
        await asyncio.sleep(0.5)
    out["api_clean_again_s"] = clean_at
    out["failed_calls_after_redis_was_back"] = sum(len(s["failed"]) for s in sweeps)
    try:
        await ctx.all_connected(timeout_s=60)
        out["sessions_stayed_connected"] = True
    except TimeoutError as exc:
        out["sessions_stayed_connected"] = False
        out["registry_error"] = str(exc)[:500]
    out["status_events_after"] = {sid: ctx.events_after(sid, t0) for sid in ctx.sids if ctx.events_after(sid, t0)}
    out["messages_after"] = await _send_round(ctx, "redis")
    out["qr_after"] = ctx.qr_after(t0)
    out["all_connected_s"] = back_s
    return out


async def fault_service(ctx: Ctx) -> dict[str, Any]:
    from wa_ray.entry.service import Service

    harness = ctx.harness
    settings = harness.service.settings
    t_stop = time.time()
    harness.service.stop()  # blocking on purpose: nothing else of ours should run meanwhile
    stop_s = round(time.time() - t_stop, 2)
    harness.service = None
    t0 = time.time()
    try:
        harness.service = Service(settings).start()
    except Exception as exc:  # noqa: BLE001
        return {"error": f"service did not start again: {type(exc).__name__}: {exc}"[:500], "stop_s": stop_s}
    start_s = round(time.time() - t0, 2)
    from wa_ray.bench.harness import _stop_on_sigterm

    _stop_on_sigterm()  # ray.init() put its own SIGTERM handler back
    # the registry first (the SSE stream reconnects on its own, with backoff)
    deadline = time.monotonic() + ctx.timeout_s
    connected_s = None
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = {s["session_id"]: s["state"] for s in await ctx.registry()}
        except (httpx.HTTPError, ValueError):
            await asyncio.sleep(0.2)
            continue
        if all(states.get(sid) == "connected" for sid in ctx.sids):
            connected_s = round(time.time() - t0, 2)
            break
        await asyncio.sleep(0.1)
    got = await ctx.wait_connected_events(ctx.sids, t0) if connected_s is not None else {}
    out: dict[str, Any] = {"killed": "Service.stop() then Service(settings).start() on the same data dir",
                           "stop_s": stop_s, "service_start_s": start_s,
                           # from the start call until the API answers and lists every session connected (the
                           # user's view; never less than service_start_s, the API is down until then)
                           "all_connected_s": connected_s,
                           "stop_begin_to_all_connected_s": round(connected_s + (t0 - t_stop), 2)
                           if connected_s is not None else None,
                           "states_at_end": {k: v for k, v in states.items() if v != "connected"}}
    if got:
        # the sessions' own `connected` events: when they were back, whether or not the API was up yet
        out["sse_view"] = _times(got, t0)
        out["sessions_connected_s"] = out["sse_view"]["all_connected_s"]
    try:
        await ctx.all_connected()
    except TimeoutError as exc:
        out["error"] = str(exc)[:500]
    out["messages_after"] = await _send_round(ctx, "service")
    out["qr_after"] = ctx.qr_after(t0)
    out["sse_reconnects_total"] = ctx.live.sse_reconnects
    return out


async def _link_tolerant(live: Any, count: int, concurrency: int) -> list[str]:
    """Link `count` more sessions; a create answered 5xx is recorded and tried again (up to 3 times)."""
    from wa_ray.bench.harness import LinkError

    start, slots, errors = len(live.links), asyncio.Semaphore(concurrency), []

    async def one(i: int) -> Any:
        async with slots:
            for attempt in range(3):
                try:
                    return await live._link_one(i, 180.0)
                except LinkError as exc:
                    if attempt == 2 or not str(exc).startswith("create ") or ": 5" not in str(exc):
                        raise
                    errors.append(str(exc)[:300])
                    await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    live.links = [*live.links, *await asyncio.gather(*(one(i) for i in range(start, start + count)))]
    return errors


# ------------------------------------------------------------------ entry point
SETTLE_BUSY_CORES = 0.5
SETTLE_MAX_S = 60.0


async def settle() -> float:
    """Wait (up to SETTLE_MAX_S) until the whole machine uses under SETTLE_BUSY_CORES over a 2 s window.

    Linking sessions leaves work behind for a while (auth saves, spare pages refilling, the previous
    fault's reconnects); a fault injected into that measures the leftovers too (the browser fault right
    after linking took 16 s, 9-10 s on a settled service). Returns the busy cores of the last window,
    recorded with each fault."""
    import psutil

    deadline = time.monotonic() + SETTLE_MAX_S
    while True:
        before = psutil.cpu_times()
        await asyncio.sleep(2.0)
        after = psutil.cpu_times()
        idle = (after.idle - before.idle) + (after.iowait - before.iowait)
        total = sum(after) - sum(before)
        busy = (psutil.cpu_count() or 1) * (1 - idle / total) if total > 0 else 0.0
        if busy < SETTLE_BUSY_CORES or time.monotonic() > deadline:
            return round(busy, 2)


async def run_faults(cfg: RecoveryConfig, harness: Any, live: Any, console: Console) -> dict[str, Any]:
    """Link cfg.sessions (if `live` has fewer), then inject each fault in turn; `harness.service` may be replaced."""
    results: dict[str, Any] = {"faults": {}}
    ctx = Ctx(harness, live, console, cfg.timeout_s)
    if len(live.links) < cfg.sessions:
        with console.status(f"linking {cfg.sessions} sessions..."):
            await live.link(cfg.sessions - len(live.links), concurrency=cfg.link_concurrency, start=len(live.links))
    results["link_s_max"] = max(l.link_s for l in live.links)
    order = [f for f in FAULTS if f in cfg.faults]
    with progress(console) as bar:
        task = bar.add_task("recovery", total=len(order), info="")
        for fault in order:
            if fault == "service" and cfg.service_sessions > len(live.links):
                more = cfg.service_sessions - len(live.links)
                bar.update(task, info=f"linking {more} more for the service restart")
                results["link_more_errors"] = await _link_tolerant(live, more, cfg.link_concurrency)
            bar.update(task, info=f"{fault}: waiting for all {len(ctx.sids)} connected and quiet")
            await ctx.all_connected(quiet_s=2.0)
            await asyncio.sleep(1.0)  # auth states of fresh links reach disk
            bar.update(task, info=f"{fault}: waiting for the machine to settle")
            busy = await settle()
            bar.update(task, info=f"{fault}: fault injected, {len(ctx.sids)} sessions")
            load = loadavg()
            try:
                r = await _FAULTS[fault](ctx)
            except Exception as exc:  # noqa: BLE001 - record it and go on with the next fault
                r = {"error": f"{type(exc).__name__}: {exc}"[:800]}
            r = {"sessions": len(ctx.sids), "loadavg_at_fault": load, "cpu_busy_cores_before_fault": busy, **r}
            results["faults"][fault] = r
            bar.update(task, advance=1, info=f"{fault}: {r.get('all_connected_s')} s, QR {r.get('qr_after')}")
            console.print(f"{fault}: back in {r.get('all_connected_s')} s, QR after {r.get('qr_after')}"
                          + (f", error {r['error']}" if r.get("error") else ""))
    return results


def run_recovery(cfg: RecoveryConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from wa_ray.bench.harness import Harness, HarnessOptions, Live

    env = Envelope("recovery")
    big = max(cfg.sessions, cfg.service_sessions or cfg.sessions) if "service" in cfg.faults else cfg.sessions
    harness = Harness(HarnessOptions(sessions=big, pacing=False))
    console.print("starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    results: dict[str, Any] = {"faults": {}}
    machine: dict[str, Any] = {}
    try:
        machine = to_jsonable(harness.machine())

        async def body() -> dict[str, Any]:
            async with Live(harness, webhook=False) as live:
                return await run_faults(cfg, harness, live, console)

        results = asyncio.run(body())
    finally:
        if _failed(results) or not results.get("faults"):
            results["service_logs_kept"] = keep_logs(harness, "recovery")
        cleanup = to_jsonable(harness.stop())
    return finish(env, cfg, results, machine, cleanup)


def _failed(results: dict[str, Any]) -> bool:
    for r in results.get("faults", {}).values():
        m = r.get("messages_after") or {}
        if r.get("error") or r.get("qr_after") or r.get("failed_calls_after_redis_was_back") or \
                (m and m.get("sent_or_better_by_api") != m.get("accepted")):
            return True
    return False


def keep_logs(harness: Any, label: str) -> str | None:
    """Copy the Ray session logs (every actor's stdout/stderr, Serve's logs) out of the private Ray temp dir,
    which the harness removes on stop, so a failure can be read afterwards. Kept under /tmp, not committed."""
    import shutil

    src = Path(harness.ray_tmp or "/nonexistent") / "ray" / "session_latest" / "logs"
    if not src.exists():
        return None
    dst = Path(f"/tmp/wa-ray-bench-logs-{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return str(dst)


def finish(env: Envelope, cfg: RecoveryConfig, results: dict[str, Any], machine: dict[str, Any],
           cleanup: dict[str, Any]) -> tuple[Envelope, dict[str, Path]]:
    env.machine = machine or machine_without_service()
    env.results = results
    errors = [f"{k}: {v['error']}" for k, v in results["faults"].items() if v.get("error")]
    if errors:
        env.results["errors"] = errors
    _goals(env, results["faults"])
    env.notes += [
        "Times are from the fault (just before the kill) to the service-clock ts of each session's first "
        "`connected` status after it; all_connected = the slowest session. For serve and redis the sessions never "
        "leave `connected`: the figure is the API outage (first signed GET 200 / first POST /messages 202). For "
        "service it is from the start call until the API lists every session connected (sessions_connected_s: "
        "their own events, which can come before the API is back).",
        "QR counts are every session.qr event stamped after the fault, from the SSE stream (which resumes by id "
        "after reconnects, so events published while it was down are counted too).",
        "Pacing is off in this run so the after-fault message rounds are not held back by the pacing policy.",
        f"Each fault waits for the machine to settle first (under {SETTLE_BUSY_CORES} busy cores over 2 s, at most "
        f"{SETTLE_MAX_S:.0f} s): 'busy cores before' is the last window's measure. Load average is shown too, but on "
        "this box it lags (Chromium's and Ray's threads) and stays high long after the CPU is idle.",
    ]
    env.cleanup = cleanup
    env.finish()
    return env, write(env, _markdown(env), cfg.out_dir or Path(__file__).resolve().parent / "results",
                      plot=lambda p: _plot(env, p))


_FAULTS = {
    "actor": lambda ctx: fault_actor(ctx, all_of_them=False),
    "actor-all": lambda ctx: fault_actor(ctx, all_of_them=True),
    "browser": fault_browser,
    "host": fault_host,
    "serve": fault_serve,
    "redis": fault_redis,
    "service": fault_service,
}


def _goals(env: Envelope, faults: dict[str, Any]) -> None:
    for name, target in GOALS_S.items():
        r = faults.get(name)
        if r is None or r.get("not_applicable"):
            continue
        t, qr = r.get("all_connected_s"), r.get("qr_after")
        met = t is not None and t <= target and qr == 0 and not r.get("error")
        env.goal(f"{name}: all {r.get('sessions')} connected again, no QR", f"<= {target:g} s, 0 QR",
                 f"{t} s, {qr} QR", met)
    for name in ("actor-all", "serve", "redis"):
        r = faults.get(name)
        if r is not None and not r.get("not_applicable"):
            env.goal(f"{name}: no QR after the fault", "0 QR", f"{r.get('qr_after')} QR",
                     r.get("qr_after") == 0 and not r.get("error"))
    r = faults.get("redis")
    if r and "messages_after" in r:
        m = r["messages_after"]
        env.goal("redis: sessions stay connected and messages are accepted and sent after the restart",
                 f"{r['sessions']} connected, {r['sessions']} sent",
                 f"connected={r.get('sessions_stayed_connected')}, accepted {m['accepted']}, "
                 f"sent {m['sent_or_better_by_api']}, acked on SSE {m['acked_on_sse']}",
                 bool(r.get("sessions_stayed_connected")) and m["sent_or_better_by_api"] == r["sessions"])
        env.goal("redis: no failed API call once Redis answers again", "0 non-2xx",
                 f"{r.get('failed_calls_after_redis_was_back')} failed (e.g. "
                 f"{(r.get('api_sweeps_after') or [{}])[0].get('failed', [])[:2]})",
                 r.get("failed_calls_after_redis_was_back") == 0)


def _markdown(env: Envelope) -> str:
    rows = []
    for name, r in env.results["faults"].items():
        per = r.get("per_session_s") or (r.get("sse_view") or {}).get("per_session_s") or {}
        detail = r.get("error") or r.get("not_applicable") or ""
        if r.get("not_applicable"):
            pass
        elif name == "serve":
            detail = detail or f"failed probes {r.get('failed_probes')}, SSE reconnects {r.get('sse_reconnects')}"
        elif name == "redis":
            m = r.get("messages_after") or {}
            detail = detail or (f"down {r.get('redis_down_s')} s; stayed connected {r.get('sessions_stayed_connected')}; "
                                f"failed API calls after it was back {r.get('failed_calls_after_redis_was_back')} "
                                f"(clean at {r.get('api_clean_again_s')} s); after: accepted {m.get('accepted')}, "
                                f"sent {m.get('sent_or_better_by_api')}, acked on SSE {m.get('acked_on_sse')}")
        elif name == "service":
            m = r.get("messages_after") or {}
            detail = detail or (f"stop {r.get('stop_s')} s, Service.start {r.get('service_start_s')} s (sessions "
                                f"themselves connected at {r.get('sessions_connected_s')} s), stop->all connected "
                                f"{r.get('stop_begin_to_all_connected_s')} s; after: sent "
                                f"{m.get('sent_or_better_by_api')}/{m.get('accepted')}")
        elif name.startswith("actor"):
            detail = detail or (f"resumed live page {r.get('resumed_live_page')}, restarts counted "
                                f"{r.get('restarts_counted')}, others disturbed {len(r.get('others_disturbed', []))}")
        elif name in ("browser", "host"):
            detail = detail or f"Chromium before: {r.get('chromium_before')}; after: {r.get('chromium_after')}"
        rows.append([name, r.get("sessions"), r.get("all_connected_s"), per.get("p50"), per.get("p95"),
                     r.get("qr_after"), r.get("cpu_busy_cores_before_fault"), r.get("loadavg_at_fault", [None])[0],
                     detail])
    return "\n".join(["## Result", "",
                      table(["fault", "sessions", "all connected / API back (s)", "per-session p50 s",
                             "per-session p95 s", "QR after", "busy cores before", "load 1m", "detail"], rows), ""])


def _plot(env: Envelope, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faults = {k: v for k, v in env.results["faults"].items() if v.get("all_connected_s") is not None}
    if not faults:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = list(faults)
    ax.bar(names, [faults[n]["all_connected_s"] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        if n in GOALS_S:
            ax.plot([i - 0.4, i + 0.4], [GOALS_S[n]] * 2, color="red", linestyle="--", linewidth=1)
        ax.text(i, faults[n]["all_connected_s"], f"{faults[n]['all_connected_s']} s\n{faults[n]['sessions']} sess",
                ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("s to all connected / API back")
    ax.set_title("recovery after each fault (red: goal)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def summary(env: Envelope) -> Any:
    from rich.table import Table

    t = Table(title="wa-ray recovery")
    for col in ("fault", "sessions", "all connected / API back s", "QR after", "error"):
        t.add_column(col)
    for name, r in env.results["faults"].items():
        t.add_row(name, str(r.get("sessions")), str(r.get("all_connected_s")), str(r.get("qr_after")),
                  str(r.get("error") or ""))
    return t
