"""Issue 7 chaos scenario: a sustained send over several linked sessions while we kill -9 what the
service is made of, then an audit against the simulator phones' inboxes and the webhook receiver.

Runs in its own process with its own Service (pacing off, fast webhook retries): one Ray per
process, and the faults (Redis restart, supervisor kill) must not reach other tests' service.
`python -m tests.chaos.scenario --scale 1` prints a summary and a final `RESULT {json}` line.

Faults, in a shuffled cycle while the sender posts at `rate` msg/s:
  actor       ray.kill a random SessionActor (no_restart: the supervisor must revive it)
  chromium    SIGKILL the node's Chromium main process (every page dies mid-send)
  supervisor  ray.kill the SessionSupervisor (Ray restarts it, max_restarts=-1)
  dispatcher  ray.kill the WebhookDispatcher (Ray restarts it)
  redis       SIGKILL the embedded Redis, start it again on the same port and data dir (AOF reload)
  host        SIGKILL the BrowserHost worker (Ray restarts it; its Chromium must go with it)

The linked phones get `latency_ms` to WhatsApp's server (as the crash test does), so a send is in
flight when a page dies and the documented `unconfirmed` outcome is exercised, not just possible.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import ray

from wa_ray.actors.webhook_signing import verify
from wa_ray.simulator.wa_web.testing import running_web_simulator
from wa_ray.storage import keys
from wa_ray.storage.redis_client import connect
from wa_ray.supervisors.session_supervisor import actor_name
from wa_ray.bench.chaos_runner import ALL_FAULTS, fault_kinds
from tests.procs import chromium_under
from tests.receiver import running_receiver
from tests.scenarios.common import client, link_many, scenario_settings, wait_all
from wa_ray import DISPATCHER_NAME, NAMESPACE, SUPERVISOR_NAME
from wa_ray.entry.service import Service

WS = "chaos"
SECRET = "whsec-chaos-0123456789abcdef"
FINAL = {"sent", "delivered", "read", "failed"}
# Issue 7 kills session actors, so the scenario runs sessions as SessionActors by default
# (WA_CHAOS_HOSTING=host runs them as grains in the BrowserHost, where there is no session actor to kill).
HOSTING = os.environ.get("WA_CHAOS_HOSTING", "actor")
# Issue 7's list by default. "host" (SIGKILL of the BrowserHost worker) is opt-in with
# WA_CHAOS_FAULTS=actor,chromium,supervisor,dispatcher,redis,host.
FAULT_KINDS = fault_kinds(os.environ.get("WA_CHAOS_FAULTS", ",".join(ALL_FAULTS[:5])), HOSTING)
PAGE_DEATHS = ("chromium", "host")


@dataclass
class Plan:
    scale: float
    sessions: int
    rate: float  # posts per second, all sessions together
    send_s: float  # how long the sender runs
    fault_every_s: float
    seed: int
    latency_ms: int = 40
    redis_down_s: float = float(os.environ.get("WA_CHAOS_REDIS_DOWN_S", "1.0"))

    @classmethod
    def of(cls, scale: float, seed: int | None) -> Plan:
        return cls(scale=scale, sessions=3 if scale < 2 else 4, rate=6.0 if scale < 2 else 8.0,
                   send_s=round(36 * scale, 1), fault_every_s=4.0, seed=seed if seed is not None else random.randrange(1 << 30))


@dataclass
class Post:
    text: str
    sid: str
    to: str
    message_id: str | None = None
    attempts: int = 0
    statuses: list[Any] = field(default_factory=list)


@dataclass
class Fault:
    kind: str
    at: float  # seconds since the sender started
    target: str = ""
    took_s: float = 0.0
    error: str = ""


def log(msg: str) -> None:
    sys.stdout.write(f"[chaos {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- helpers on the live service
def _host() -> Any:
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == NAMESPACE and a["name"].startswith("browser-host:")]
    return ray.get_actor(names[0], namespace=NAMESPACE)


def _host_pid() -> int:
    return ray.get(_host().ping.remote(), timeout=60)["pid"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return not fh.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return False


class Chaos:
    def __init__(self, plan: Plan, service: Service, sim_url: str, phones: dict[str, str],
                 recipients: dict[str, str]) -> None:
        self.plan = plan
        self.service = service
        self.sim_url = sim_url
        self.phones = phones
        self.recipients = recipients
        self.rng = random.Random(plan.seed)
        self.posts: list[Post] = []
        self.faults: list[Fault] = []
        self.seen_chromium: set[int] = set()
        self.t0 = 0.0
        self.stop_sending = asyncio.Event()

    # --------------------------------------------------------------- sender
    async def _post_one(self, api: httpx.AsyncClient, post: Post) -> None:
        """POST with an Idempotency-Key; a failed try (Redis down, 5xx, timeout) is retried with the same key."""
        body = {"to": post.to, "text": post.text, "session_id": post.sid}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            post.attempts += 1
            try:
                r = await api.post(f"/v1/workspaces/{WS}/messages", json=body,
                                   headers={"Idempotency-Key": post.text}, timeout=15)
                post.statuses.append(r.status_code)
                if r.status_code in (200, 202):
                    post.message_id = r.json()["message_id"]
                    return
            except httpx.HTTPError as exc:
                post.statuses.append(type(exc).__name__)
            await asyncio.sleep(0.5)

    async def sender(self, api: httpx.AsyncClient) -> None:
        sids = list(self.phones)
        tasks = []
        n = 0
        while not self.stop_sending.is_set():
            sid = sids[n % len(sids)]
            post = Post(text=f"chaos-{sid}-{n:05d}", sid=sid, to=self.recipients[sid])
            self.posts.append(post)
            tasks.append(asyncio.create_task(self._post_one(api, post)))
            n += 1
            try:
                await asyncio.wait_for(self.stop_sending.wait(), 1.0 / self.plan.rate)
            except TimeoutError:
                pass
        await asyncio.gather(*tasks)

    # --------------------------------------------------------------- faults
    def _note_chromium(self) -> None:
        try:
            self.seen_chromium.update(chromium_under(_host_pid()))
        except Exception:
            pass

    async def inject(self, kind: str) -> Fault:
        fault = Fault(kind, round(time.monotonic() - self.t0, 2))
        started = time.monotonic()
        try:
            if kind == "actor":
                sid = self.rng.choice(list(self.phones))
                fault.target = sid
                handle = ray.get_actor(actor_name(WS, sid), namespace=NAMESPACE)
                ray.kill(handle, no_restart=True)
            elif kind == "chromium":
                host_pid = await asyncio.to_thread(_host_pid)
                self.seen_chromium.update(chromium_under(host_pid))
                mains = chromium_under(host_pid, "")
                fault.target = f"pid {mains}"
                for pid in mains:
                    os.kill(pid, signal.SIGKILL)
            elif kind == "host":
                host_pid = await asyncio.to_thread(_host_pid)
                self.seen_chromium.update(chromium_under(host_pid))
                fault.target = f"pid {host_pid}"
                os.kill(host_pid, signal.SIGKILL)
            elif kind == "supervisor":
                ray.kill(ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE), no_restart=False)
            elif kind == "dispatcher":
                ray.kill(ray.get_actor(DISPATCHER_NAME, namespace=NAMESPACE), no_restart=False)
            elif kind == "redis":
                redis = self.service.redis
                assert redis is not None
                fault.target = f"port {redis.port}"
                await asyncio.to_thread(redis.kill)
                await asyncio.sleep(self.plan.redis_down_s)  # down for a while, with posts and sends in flight
                await asyncio.to_thread(redis.start, 30.0)
        except Exception as exc:  # a fault that could not be injected is reported, not hidden
            fault.error = f"{type(exc).__name__}: {exc}"[:300]
        fault.took_s = round(time.monotonic() - started, 2)
        self.faults.append(fault)
        log(f"fault {kind} at +{fault.at}s {fault.target} {fault.error}")
        return fault

    async def injector(self) -> None:
        await asyncio.sleep(self.plan.fault_every_s / 2)
        cycle: list[str] = []
        while not self.stop_sending.is_set():
            if not cycle:
                cycle = list(FAULT_KINDS)
                self.rng.shuffle(cycle)
            await self.inject(cycle.pop())
            try:
                await asyncio.wait_for(self.stop_sending.wait(), self.plan.fault_every_s * self.rng.uniform(0.75, 1.25))
            except TimeoutError:
                pass

    async def run(self, api: httpx.AsyncClient) -> None:
        self._note_chromium()
        self.t0 = time.monotonic()
        send = asyncio.create_task(self.sender(api))
        faults = asyncio.create_task(self.injector())
        await asyncio.sleep(self.plan.send_s)
        # every kind of fault at least once, whatever the scale (a small run just sends a little longer)
        while {f.kind for f in self.faults} < set(FAULT_KINDS) and not faults.done():
            await asyncio.sleep(0.2)
        self.stop_sending.set()
        await faults
        await send
        log(f"sender stopped: {len(self.posts)} posts, {len(self.faults)} faults")


# ----------------------------------------------------------------------------- audit
async def _settle(api: httpx.AsyncClient, posts: list[Post], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    records: dict[str, dict] = {}
    pending = [p.message_id for p in posts if p.message_id]
    while pending and time.monotonic() < deadline:
        still = []
        for mid in pending:
            try:
                r = await api.get(f"/v1/workspaces/{WS}/messages/{mid}")
                rec = r.json() if r.status_code == 200 else {"status": f"http {r.status_code}"}
            except httpx.HTTPError as exc:
                rec = {"status": type(exc).__name__}
            records[mid] = rec
            if rec.get("status") not in FINAL:
                still.append(mid)
        pending = still
        if pending:
            await asyncio.sleep(1.0)
    return records


async def _wait_webhooks(redis_url: str, receiver: Any, timeout: float) -> tuple[list[str], list[str]]:
    """Every event in the workspace stream (the outbox) reached the receiver; returns (stream ids, missing)."""
    redis = connect(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            stream_ids = [i for i, _ in await redis.xrange(keys.events(WS))]
            got = {d.headers.get("x-event-id") for d in list(receiver.deliveries)}
            missing = [i for i in stream_ids if i not in got]
            if not missing or time.monotonic() > deadline:
                return stream_ids, missing
            await asyncio.sleep(1.0)
    finally:
        await redis.aclose()


async def _stuck_detail(redis: Any, message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For a post-mortem of a message that never became final: its intent, whether its owner's heartbeat
    is alive, and which sender consumer holds its queue entry (and how idle it is)."""
    out: dict[str, dict[str, Any]] = {}
    for mid in message_ids:
        rec = await redis.hgetall(keys.message(WS, mid))
        detail: dict[str, Any] = {k: rec.get(k) for k in ("status", "session_id", "owner", "doc", "wa_key",
                                                           "intent_at", "provider", "priority")}
        if rec.get("intent_at"):
            detail["intent_age_s"] = round(time.time() - float(rec["intent_at"]), 1)
        detail["owner_alive"] = bool(rec.get("owner")) and bool(await redis.exists(keys.sender_alive(rec["owner"])))
        stream = keys.queue(WS, rec.get("session_id", ""), rec.get("priority", "normal"))
        entry = [i for i, f in await redis.xrange(stream) if f.get("m") == mid]
        detail["queue_entry"] = entry[0] if entry else None
        if entry:
            try:
                pending = await redis.xpending_range(stream, keys.QUEUE_GROUP, min=entry[0], max=entry[0], count=1)
            except Exception as exc:  # noqa: BLE001 - a post-mortem reports what it can
                pending = [{"error": str(exc)}]
            detail["pending"] = [{k: v for k, v in p.items()} for p in pending]
        out[mid] = detail
    return out


async def audit(chaos: Chaos, api: httpx.AsyncClient, receiver: Any, linked_ms: int) -> dict[str, Any]:
    posts = chaos.posts
    accepted = [p for p in posts if p.message_id]
    rejected = [p for p in posts if not p.message_id]
    records = await _settle(api, accepted, timeout=150)
    not_final = {p.message_id: records.get(p.message_id, {}).get("status") for p in accepted
                 if records.get(p.message_id, {}).get("status") not in FINAL}

    bodies: list[str] = []
    async with httpx.AsyncClient(base_url=chaos.sim_url, timeout=30) as phone:
        for to in set(chaos.recipients.values()):
            bodies += [m["body"] for m in (await phone.get(f"/_phone/{to}/inbox")).json()["messages"]]
    on_phone = Counter(b for b in bodies if b.startswith("chaos-"))

    lost, duplicated, unconfirmed, other_failed = [], {}, [], []
    unconfirmed_seen: dict[str, int] = {}
    for p in accepted:
        rec = records.get(p.message_id, {})
        seen = on_phone.get(p.text, 0)
        if seen > 1:
            duplicated[p.text] = seen
        if rec.get("status") == "failed":
            if str(rec.get("reason", "")).startswith("unconfirmed"):
                unconfirmed.append(p)
                unconfirmed_seen[p.text] = seen
            else:
                other_failed.append((p.text, rec.get("reason")))
        if seen == 0 and p.text not in unconfirmed_seen:  # an unconfirmed one was reported failed, not lost
            lost.append(p.text)
    # a post never answered 2xx may still have been committed (Redis died after EXEC): at most once
    rejected_dup = {p.text: on_phone[p.text] for p in rejected if on_phone.get(p.text, 0) > 1}
    unconfirmed_per_session = Counter(p.sid for p in unconfirmed)

    stream_ids, missing_events = await _wait_webhooks(chaos.service.config.redis_url, receiver, timeout=90)
    by_id: dict[str, list] = defaultdict(list)
    bad_signatures = 0
    for d in list(receiver.deliveries):
        by_id[d.headers.get("x-event-id", "")].append(d)
        if not verify(SECRET, d.headers.get("x-timestamp", ""), d.body, d.headers.get("x-signature", "")):
            bad_signatures += 1
    unstable = [eid for eid, ds in by_id.items() if len({d.body for d in ds}) > 1
                or len({d.headers.get("x-event-type") for d in ds}) > 1]
    events = {eid: orjson.loads(ds[0].body) for eid, ds in by_id.items()}
    redeliveries = sum(len(ds) - 1 for ds in by_id.values())
    by_message: dict[str, set[str]] = defaultdict(set)
    for e in events.values():
        mid = (e.get("data") or {}).get("message_id")
        if mid:
            by_message[mid].add(e["type"])
    no_queued = [p.message_id for p in accepted if "message.queued" not in by_message[p.message_id]]
    no_outcome = []
    for p in accepted:
        status = records.get(p.message_id, {}).get("status")
        want = "message.failed" if status == "failed" else "message.sent"
        if want not in by_message[p.message_id]:
            no_outcome.append((p.message_id, status, sorted(by_message[p.message_id])))
    with_ack = sum(1 for p in accepted if "message.ack" in by_message[p.message_id])
    qr_after = [e for e in events.values() if e["type"] == "session.qr" and e.get("ts", 0) * 1000 > linked_ms]

    host_pid = await asyncio.to_thread(_host_pid)
    deadline = time.monotonic() + 20
    while True:
        mains = chromium_under(host_pid, "")
        current = set(chromium_under(host_pid))
        leaked = sorted(p for p in chaos.seen_chromium - current if _alive(p))
        if (len(mains) == 1 and not leaked) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)

    page_deaths = sum(1 for f in chaos.faults if f.kind in PAGE_DEATHS and not f.error)
    # each session's live sender keeps its heartbeat (a reclaim trusts it to leave an in-flight send alone)
    redis = connect(chaos.service.config.redis_url)
    try:
        # exactly one per session: a replaced sender's beat is deleted when it stops, or lapses in its TTL
        deadline = time.monotonic() + 15
        while True:
            heartbeats = sorted([await redis.get(k) async for k in redis.scan_iter(match=keys.sender_alive("*"))])
            per_session = Counter(s for s in (hb.split("@")[0] for hb in heartbeats if hb) if s in chaos.phones)
            if (sorted(per_session) == sorted(chaos.phones) and set(per_session.values()) == {1}) \
                    or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        stuck = await _stuck_detail(redis, list(not_final)[:20])
        session_states = {sid: (await redis.hgetall(keys.session(WS, sid))).get("state") for sid in chaos.phones}
    finally:
        await redis.aclose()

    return {
        "plan": chaos.plan.__dict__, "sessions": sorted(chaos.phones),
        "sender_heartbeats": heartbeats,
        "posted": len(posts), "accepted": len(accepted), "rejected": len(rejected),
        "post_retries": sum(p.attempts - 1 for p in posts),
        "delivered": sum(1 for p in accepted if on_phone.get(p.text, 0) >= 1),
        "duplicates": len(duplicated), "duplicated": dict(list(duplicated.items())[:20]),
        "lost": len(lost), "lost_texts": lost[:20],
        "not_final": dict(list(not_final.items())[:20]), "not_final_count": len(not_final),
        "stuck_detail": stuck, "session_states": session_states,
        "unconfirmed": len(unconfirmed), "unconfirmed_inbox_counts": unconfirmed_seen,
        "unconfirmed_per_session": dict(unconfirmed_per_session), "page_deaths": page_deaths,
        "other_failed": other_failed[:20],
        "rejected_on_phone": sum(1 for p in rejected if on_phone.get(p.text, 0)), "rejected_duplicated": rejected_dup,
        "webhook_events": len(stream_ids), "webhook_deliveries": sum(len(ds) for ds in by_id.values()),
        "redeliveries": redeliveries, "missing_events": missing_events[:20], "missing_events_count": len(missing_events),
        "unstable_event_ids": unstable[:20], "bad_signatures": bad_signatures,
        "messages_without_queued_event": no_queued[:20], "messages_without_outcome_event": no_outcome[:20],
        "messages_with_ack_event": with_ack,
        "qr_after_linking": len(qr_after),
        "chromium_mains": len(mains), "chromium_leaked": leaked, "chromium_seen": len(chaos.seen_chromium),
        "faults": [f.__dict__ for f in chaos.faults],
    }


# ----------------------------------------------------------------------------- main
async def _scenario(plan: Plan, service: Service, sim_url: str, receiver: Any) -> dict[str, Any]:
    settings = service.settings
    phones = {f"c{i}": f"1555770{i:04d}" for i in range(plan.sessions)}
    recipients = {sid: f"1555771{i:04d}" for i, sid in enumerate(phones)}
    async with client(settings) as api:
        r = await api.put(f"/v1/workspaces/{WS}/webhook", json={"url": receiver.url, "secret": SECRET})
        assert r.status_code == 204, r.text
        # attempts stay the operator's (webhook_max_attempts=100 below): a tenant's policy is capped at 20
        r = await api.put(f"/v1/workspaces/{WS}/webhook/policy", json={"base_delay_s": 0.2, "max_delay_s": 2.0})
        assert r.status_code == 200, r.text
        started = time.monotonic()
        await link_many(api, sim_url, WS, phones)
        await wait_all(api, WS, "connected", plan.sessions, timeout=120)
        await asyncio.sleep(1.0)  # auth states saved after ready: a crash restores without QR
        async with httpx.AsyncClient(base_url=sim_url, timeout=10) as phone:
            for number in phones.values():
                r = await phone.put(f"/_phone/{number}/config", json={"latency_ms": plan.latency_ms})
                assert r.status_code == 200, r.text
        linked_ms = int(time.time() * 1000)
        log(f"{plan.sessions} sessions linked in {time.monotonic() - started:.1f}s")
        chaos = Chaos(plan, service, sim_url, phones, recipients)
        await chaos.run(api)
        result = await audit(chaos, api, receiver, linked_ms)
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"chaos summary (scale {result['plan']['scale']}, seed {result['plan']['seed']}, "
        f"{result['plan']['sessions']} sessions, {result['plan']['rate']} msg/s for {result['plan']['send_s']} s, "
        f"{result['plan']['latency_ms']} ms to the server):",
        f"  posted {result['posted']}  accepted {result['accepted']}  rejected {result['rejected']}  "
        f"post retries {result['post_retries']}",
        f"  delivered {result['delivered']}  duplicates {result['duplicates']}  lost {result['lost']}  "
        f"unconfirmed {result['unconfirmed']} (inbox counts {sorted(result['unconfirmed_inbox_counts'].values())}, "
        f"page deaths {result['page_deaths']})  not final {result['not_final_count']}",
        f"  webhook events {result['webhook_events']}  deliveries {result['webhook_deliveries']}  "
        f"redeliveries {result['redeliveries']}  missing {result['missing_events_count']}  "
        f"unstable ids {len(result['unstable_event_ids'])}  bad signatures {result['bad_signatures']}  "
        f"messages with ack event {result['messages_with_ack_event']}",
        *([f"  stuck: {result['stuck_detail']}", f"  session states {result['session_states']}"]
          if result["not_final_count"] else []),
        f"  qr after linking {result['qr_after_linking']}  chromium mains {result['chromium_mains']}  "
        f"leaked {result['chromium_leaked']} (of {result['chromium_seen']} seen)  "
        f"sender heartbeats {result['sender_heartbeats']}",
        f"  faults ({len(result['faults'])}):",
    ]
    for f in result["faults"]:
        lines.append(f"    +{f['at']:7.2f}s {f['kind']:<10} {f['target']} took {f['took_s']}s {f['error']}")
    return "\n".join(lines)


def run(plan: Plan) -> dict[str, Any]:
    log(f"plan {plan}, sessions hosted as {HOSTING}s, faults {FAULT_KINDS}")
    with running_web_simulator() as sim, running_receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
        settings = scenario_settings(Path(tmp), sim.url + "/", session_hosting=HOSTING, pacing=False,
                                     typing_delay=False, webhook_base_delay_s=0.2, webhook_max_delay_s=2.0,
                                     webhook_max_attempts=100)
        service = Service(settings)
        started = time.monotonic()
        try:
            service.start()
            log(f"service up in {time.monotonic() - started:.1f}s")
            result = asyncio.run(_scenario(plan, service, sim.url, receiver))
        finally:
            service.stop()
        result["runtime_s"] = round(time.monotonic() - started, 1)
    return result


def _terminate(signum, frame) -> None:  # a SIGTERM from the test's timeout still stops Ray, Chromium, Redis
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=float(os.environ.get("WA_CHAOS_SCALE", "1")))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    result = run(Plan.of(args.scale, args.seed))
    sys.stdout.write(summary(result) + "\n")
    sys.stdout.write("RESULT " + orjson.dumps(result).decode() + "\n")
