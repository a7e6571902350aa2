"""Bring up everything a bench needs, link sessions the way a user would, and take it all down.

`Harness` (synchronous) owns the processes: the WhatsApp Web simulator (in this
process, like the tests), the webhook receiver (a child process), and the
service itself (`wa_ray.entry.service.Service`: embedded Redis, a local Ray cluster,
Serve, the supervisor, the BrowserHost's Chromium). Its `stop()` checks that
every process it started is gone and ends, by pid, any that outlived the
service's own shutdown (processes that were there before `start()`, such as the
Redis Cluster of `--redis-cluster`, are not its to end).

The service's Redis is the embedded one unless `REDIS_URL` names another
(bench/redis_target.py); such a Redis must be empty, and its servers on this
machine count in the CPU accounting as `redis-server`.

`Live` (asynchronous) is the client side: a signed API client, the phone API,
the workspace's SSE stream and the webhook arrivals feeding one `Timeline`,
and `link()` which creates sessions and scans their QR codes from the SSE
stream through the phone API, exactly the path a real user takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

from wa_ray.bench.machine import CpuAccount, MachineInfo, component_of, describe_machine
from wa_ray.bench.redis_target import EMBEDDED, RedisProbe, local_pids, requested_url
from wa_ray.bench.timeline import SSE_TYPES, Timeline
from wa_ray.bench.webhooks import WebhookReceiver
from wa_ray.storage.embedded import free_port
from wa_ray.config import Settings
from wa_ray.entry.service import Service
from wa_ray.signing import HmacAuth
from wa_ray.entry.sse_client import read_events

log = logging.getLogger("bench")

WORKSPACE = "bench"
ADMIN_KEY_ID = "bench-admin"


def session_id_of(i: int) -> str:
    return f"s{i:02d}"


def phone_of(i: int) -> str:
    """The simulated phone that links session i."""
    return f"1555100{i:04d}"


def recipient_of(i: int) -> str:
    """The phone that session i sends to (one per session, so inboxes can be checked separately)."""
    return f"1555200{i:04d}"


@dataclass(frozen=True)
class HarnessOptions:
    sessions: int = 1
    pacing: bool = True
    webhook_base_delay_s: float = 0.2
    sessions_per_node: int = 50
    page_cost: str = "light"  # the simulator page: "light", or "heavy" (simulator/wa_web/static/heavy.js)


@dataclass(frozen=True)
class CleanupReport:
    processes_started: int
    leftovers_killed: list[str]
    data_dir_removed: bool


@dataclass
class Harness:
    options: HarnessOptions
    admin_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    webhook_secret: str = field(default_factory=lambda: "whsec-" + secrets.token_hex(16))
    data_dir: Path | None = None
    service: Service | None = None
    receiver: WebhookReceiver | None = None
    sim_url: str = ""
    ignored_settings: list[str] = field(default_factory=list)
    worker_code: str = ""
    ray_tmp: str = ""
    _saved_ray_tmpdir: str | None = None
    cpu: CpuAccount = field(default_factory=CpuAccount)
    # the Redis the operator named (REDIS_URL); None: the service's embedded one. Never shown: it has the password
    redis_url: str | None = field(default_factory=requested_url, repr=False)
    redis: RedisProbe | None = None  # the bench's own client of the service's Redis, open while it runs
    redis_used: str = ""  # which Redis, for the reports (no password)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _before_start: set[tuple[int, float]] = field(default_factory=set)  # (pid, created) of processes not ours

    @property
    def base_url(self) -> str:
        assert self.service is not None
        return self.service.base_url

    def start(self) -> Harness:
        from wa_ray.simulator.wa_web.config import SimConfig
        from wa_ray.simulator.wa_web.testing import running_web_simulator

        self._before_start = {(pid, created) for pid, (created, _label) in _descendants().items()}
        try:
            if self.redis_url is not None:  # before anything starts: a Redis with data is refused outright
                self.redis = RedisProbe(self.redis_url)
                self.redis.require_empty()
            self.data_dir = Path(tempfile.mkdtemp(prefix="wa-ray-bench-"))
            sim = self._stack.enter_context(running_web_simulator(SimConfig(page_cost=self.options.page_cost)))
            self.sim_url = sim.url
            self.receiver = WebhookReceiver(free_port(), self.webhook_secret).start()
            if self.receiver.pid:
                self.cpu.name(self.receiver.pid, "bench-webhook-receiver")
            settings = Settings(**self._settings_kwargs(sim.url))
            if not settings.ray_address:
                self._isolate_ray()
            self.service = Service(settings).start()
            self._watch_redis()
            _stop_on_sigterm()
            self.worker_code = _worker_code_path()
        except BaseException:
            self.stop()
            raise
        return self

    def _watch_redis(self) -> None:
        """Open the probe of the embedded Redis; count an external Redis's local servers as ours."""
        assert self.service is not None and self.service.config is not None
        if self.redis is None:
            self.redis = RedisProbe(self.service.config.redis_url)
            self.redis_used = EMBEDDED
            return
        self.redis_used = self.redis.describe()
        for pid in local_pids(self.redis.addresses()):
            self.cpu.watch(pid)

    def _isolate_ray(self) -> None:
        """A private Ray temp dir, so ray.init() starts our own cluster.

        Without an address, ray.init() joins the cluster named in <ray tmp>/ray_current_cluster, i.e. any
        `ray start` someone else left running on this machine, and Service.start then fails ("When
        connecting to an existing cluster, resources must not be provided"). The env var is inherited by
        every Ray process the bench starts; it is restored in stop().
        """
        self.ray_tmp = tempfile.mkdtemp(prefix="wrb-ray-", dir="/tmp")
        self._saved_ray_tmpdir = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = self.ray_tmp

    def _settings_kwargs(self, sim_url: str) -> dict[str, Any]:
        assert self.data_dir is not None
        wanted: dict[str, Any] = {
            "data_dir": self.data_dir, "http_port": free_port(), "web_url": sim_url + "/", "redis_url": self.redis_url,
            "api_key_id": ADMIN_KEY_ID, "api_key_secret": self.admin_secret,
            "webhook_base_delay_s": self.options.webhook_base_delay_s,
            "sessions_per_node": max(self.options.sessions_per_node, self.options.sessions),
            "sessions_per_workspace": self.options.sessions,  # raised only if the default quota is lower
            "pacing": self.options.pacing,
            "egress_allow": "127.0.0.0/8", "egress_dns": False,  # the bench's webhook receiver is on loopback
        }
        fields = Settings.model_fields
        kwargs = {k: v for k, v in wanted.items() if k in fields}
        if "sessions_per_workspace" in kwargs:
            kwargs["sessions_per_workspace"] = max(self.options.sessions, int(fields["sessions_per_workspace"].default))
        self.ignored_settings = sorted(set(wanted) - set(kwargs))
        return kwargs

    def machine(self) -> MachineInfo:
        assert self.service is not None and self.redis is not None
        version = "unknown"
        with contextlib.suppress(Exception):
            version = self.redis.version()
        settings = self.service.settings
        return describe_machine(settings.chromium, version, settings.session_hosting, self.redis_used,
                                settings.ingress)

    def redis_commandstats(self) -> dict[str, tuple[int, int]]:
        """Redis `INFO commandstats`: command -> (calls, usec), summed over every primary, to count Redis work
        per message."""
        assert self.redis is not None
        return self.redis.commandstats()

    def runtime_facts(self) -> dict[str, Any]:
        """What the running service actually uses, as opposed to what the bench asked for."""
        cfg = self.service.config if self.service else None
        pacing = getattr(cfg, "pacing", None)  # not every build has one
        return {
            "requested_pacing": self.options.pacing,
            "pacing_in_service": f"RuntimeConfig.pacing={pacing}" if pacing is not None
            else "no pacing setting in this build (Settings/RuntimeConfig have none): sends are unpaced",
            "settings_not_in_this_build": ", ".join(self.ignored_settings) or "-",
            "code_under_test": self.worker_code,
            "webhook_base_delay_s": getattr(cfg, "webhook_base_delay_s", None),
            "redis": self.redis_used,
            "ray": f"local, started by the bench (RAY_TMPDIR={self.ray_tmp})" if self.ray_tmp
            else f"joined {self.service.settings.ray_address if self.service else '?'}",
        }

    def stop(self) -> CleanupReport:
        """Stop everything; then end, by pid, any process of ours that outlived the shutdown."""
        ours = {pid: seen for pid, seen in _descendants().items() if (pid, seen[0]) not in self._before_start}
        if self.redis is not None:
            self.redis.close()
            self.redis = None
        if self.service is not None:
            try:
                self.service.stop()
            except Exception:
                log.exception("service stop failed")
            self.service = None
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        self._stack.close()
        leftovers = _reap(ours, grace_s=15.0)
        if self.ray_tmp:
            if self._saved_ray_tmpdir is None:
                os.environ.pop("RAY_TMPDIR", None)
            else:
                os.environ["RAY_TMPDIR"] = self._saved_ray_tmpdir
            shutil.rmtree(self.ray_tmp, ignore_errors=True)
            self.ray_tmp = ""
        removed = False
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            removed = not self.data_dir.exists()
        return CleanupReport(processes_started=len(ours), leftovers_killed=leftovers, data_dir_removed=removed)


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the caller's `finally: harness.stop()` still ends what we started.

    ray.init() installs a C++ handler that aborts the driver on SIGTERM and leaves the cluster behind."""
    import signal
    import threading

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _worker_code_path() -> str:
    """Where the Ray workers import the product from (it must be the tree the bench runs from)."""
    import ray

    @ray.remote(num_cpus=0)
    def where() -> str:
        import wa_ray.actors

        return str(Path(wa_ray.actors.__file__).resolve().parent.parent)

    return str(ray.get(where.remote(), timeout=60))


def _descendants() -> dict[int, tuple[float, str]]:
    out: dict[int, tuple[float, str]] = {}
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out[proc.pid] = (proc.create_time(), component_of(proc))
    return out


def _reap(ours: dict[int, tuple[float, str]], grace_s: float) -> list[str]:
    """Wait for our processes to end; terminate (then kill) the ones that do not. Never touches other pids."""

    def alive() -> list[psutil.Process]:
        found = []
        for pid, (created, label) in ours.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    if "resource_tracker" in " ".join(proc.cmdline()):
                        continue  # multiprocessing's helper: exits with this process
                    found.append(proc)
        return found

    deadline = time.monotonic() + grace_s
    while (procs := alive()) and time.monotonic() < deadline:
        time.sleep(0.25)
    if not procs:
        return []
    killed = [f"{p.pid} {ours[p.pid][1]}" for p in procs]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(procs, timeout=5)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(still, timeout=5)
    log.warning("ended %d process(es) that outlived the service shutdown: %s", len(killed), killed)
    return killed


# ------------------------------------------------------------------ the client side
@dataclass(frozen=True)
class SessionLink:
    session_id: str
    phone: str
    recipient: str
    link_s: float  # POST /sessions -> session.ready on SSE
    qr_codes_seen: int


class LinkError(RuntimeError):
    pass


class Live:
    """Signed API client, phone API, SSE stream and webhook arrivals, all feeding one Timeline."""

    def __init__(self, harness: Harness, max_connections: int = 256, webhook: bool = True,
                 sse_types: tuple[str, ...] = SSE_TYPES) -> None:
        self.harness = harness
        self.webhook = webhook  # False: no webhook configured (the service then delivers none)
        self.sse_types = sse_types  # the soak adds message.received (its inbound traffic)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.api = httpx.AsyncClient(base_url=harness.base_url, auth=HmacAuth(ADMIN_KEY_ID, harness.admin_secret),
                                     timeout=httpx.Timeout(30.0), limits=limits)
        self.phones = httpx.AsyncClient(base_url=harness.sim_url, timeout=60.0)
        self.timeline = Timeline()
        self.links: list[SessionLink] = []
        self.sse_connected = asyncio.Event()
        self.sse_reconnects = 0
        self.last_sse_error = ""
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        assert self.harness.receiver is not None
        if self.webhook:
            put = await self.api.put(f"/v1/workspaces/{WORKSPACE}/webhook",
                                     json={"url": self.harness.receiver.url, "secret": self.harness.webhook_secret})
            if put.status_code != 204:
                raise RuntimeError(f"PUT webhook -> {put.status_code} {put.text}")
        self._tasks = [asyncio.create_task(self._sse_loop(), name="bench-sse")]
        if self.webhook:  # else the receiver is left to a Live that set one (the smoke runs two at once)
            self._tasks.append(asyncio.create_task(self._webhook_loop(), name="bench-webhooks"))
        try:
            await asyncio.wait_for(self.sse_connected.wait(), 30)
        except TimeoutError:
            await self.__aexit__(None, None, None)
            raise RuntimeError(f"the SSE stream never connected; last error: {self.last_sse_error}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.api.aclose()
        await self.phones.aclose()

    async def _sse_loop(self) -> None:
        while True:
            try:
                token = (await self.api.post(f"/v1/workspaces/{WORKSPACE}/stream-tokens")).json()["token"]
                url = f"/v1/workspaces/{WORKSPACE}/events"
                params = {"token": token, "types": ",".join(self.sse_types)}
                # "0-0" on the first connect: the data dir is fresh, and nothing published before the
                # stream's cursor is set can be missed.
                headers = {"Last-Event-ID": self.timeline.last_sse_id or "0-0"}
                async with httpx.AsyncClient(base_url=self.harness.base_url,
                                             timeout=httpx.Timeout(None, connect=10.0)) as raw, \
                        raw.stream("GET", url, params=params, headers=headers) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        resp.raise_for_status()
                    self.sse_connected.set()
                    async for event in read_events(resp):
                        self.timeline.on_sse(event.json(), time.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever dropped the stream, resume from the last id
                self.sse_reconnects += 1
                detail = (f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
                          if isinstance(exc, httpx.HTTPStatusError) else f"{type(exc).__name__}: {exc}")
                self.last_sse_error = detail
                log.warning("SSE stream dropped (%s); resuming from %s", detail, self.timeline.last_sse_id)
                await asyncio.sleep(min(0.5 * 2 ** min(self.sse_reconnects, 3), 4.0))

    async def _webhook_loop(self) -> None:
        assert self.harness.receiver is not None
        receiver = self.harness.receiver
        while True:
            for hit in receiver.drain():
                self.timeline.on_webhook(hit)
            await asyncio.sleep(0.05)

    # ---------------------------------------------------------------- linking
    async def link(self, count: int, concurrency: int = 4, timeout_s: float = 180.0,
                   on_linked: Callable[[SessionLink], None] | None = None, start: int = 0) -> list[SessionLink]:
        """Link sessions start .. start+count-1; with start > 0 they are added to `links`."""
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> SessionLink:
            async with slots:
                link = await self._link_one(i, timeout_s)
            if on_linked:
                on_linked(link)
            return link

        linked = list(await asyncio.gather(*(one(i) for i in range(start, start + count))))
        self.links = [*self.links[:start], *linked] if start else linked
        return self.links

    async def _link_one(self, i: int, timeout_s: float) -> SessionLink:
        sid, phone = session_id_of(i), phone_of(i)
        started = time.monotonic()
        created = await self.api.post(f"/v1/workspaces/{WORKSPACE}/sessions", json={"session_id": sid})
        if created.status_code != 201:
            raise LinkError(f"create {sid}: {created.status_code} {created.text}")
        scanned: set[str] = set()
        while time.monotonic() - started < timeout_s:
            events = self.timeline.session_events.get(sid, [])
            if any(e["type"] == "session.ready" for e in events):
                return SessionLink(sid, phone, recipient_of(i), round(time.monotonic() - started, 3), len(scanned))
            states = [e["data"].get("state") for e in events if e["type"] == "session.status"]
            if states and states[-1] in ("failed", "blocked", "logged_out"):
                raise LinkError(f"{sid} went {states[-1]} while linking: {events[-1]['data']}")
            qrs = [e["data"]["qr"] for e in events if e["type"] == "session.qr"]
            if qrs and qrs[-1] not in scanned:
                scanned.add(qrs[-1])
                scan = await self.phones.post(f"/_phone/{phone}/scan", json={"qr": qrs[-1]})
                if scan.status_code != 200:  # e.g. the code rotated meanwhile: the next one is scanned
                    log.warning("scan of %s by %s -> %s %s", sid, phone, scan.status_code, scan.text)
            await asyncio.sleep(0.05)
        raise LinkError(f"{sid} not ready after {timeout_s}s; events: {self.timeline.session_events.get(sid)}")

    async def inbox_bodies(self, number: str) -> list[str]:
        reply = await self.phones.get(f"/_phone/{number}/inbox")
        reply.raise_for_status()
        return [m.get("body", "") for m in reply.json()["messages"]]
