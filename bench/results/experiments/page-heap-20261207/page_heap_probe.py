"""Where a linked page's memory goes per message: the simulator's stores, our bridge, or Chromium itself.

One session, driven as the BrowserHost drives it but without Ray: our PageSession (sessions/page.py, with
the bridge init scripts) in a context of one Chromium launched with the service's flags, our SessionSender
(actors/outbound.py) pulling the session's Redis queue, and the page's signals routed by BrowserHost._route
itself into our InboundRecorder (inbound messages, acks). Redis is the embedded one, the simulator runs as
its own `wa-sim web` process, as in the bench. Outbound messages are accepted into Redis as the API does
(MessageStore.accept); inbound ones are written by the recipient phone through the phone API, as the soak does.

Every `--every` messages in the page's store, with traffic running, it samples:
* counts: the simulator's stores (Msg, every chat's msgs, chats, contacts), every Map / Set / Array / object
  held in the closures of the simulator's and the bridge's scripts (read through CDP [[Scopes]], so nothing is
  added to the page), and Playwright's binding callbacks for our `__warayEmit`;
* the JS heap after a forced GC (HeapProfiler.collectGarbage, Runtime.getHeapUsage);
* Performance.getMetrics (Nodes, JSEventListeners, LayoutObjects, ...);
* PSS (/proc/<pid>/smaps_rollup) of the page's renderer, of the browser process and of all Chromium processes.

At the end: a heap snapshot's histogram (by constructor) with every message still held, then the release test:
every message is removed from the simulator's Msg and chat.msgs collections and the heap is collected again;
what the heap gives back is what the page's message store held.

    flock /tmp/wa-integration.lock .venv/bin/python \
        bench/results/experiments/page-heap-20261207/page_heap_probe.py --out 3000 --in 750
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from wa_ray.actors.browser_host import BrowserHost, HostedSession
from wa_ray.actors.inbound import InboundRecorder
from wa_ray.actors.outbound import SessionSender
from wa_ray.bench.memory import descendants, process_table, rollup
from wa_ray.crypto import MasterKey
from wa_ray.ids import new_id
from wa_ray.master_keys import write_key_file
from wa_ray.runtime import RuntimeConfig, chromium_launch_flags, default_chromium
from wa_ray.sessions.page import PageSession
from wa_ray.sessions.state import PageSignal
from wa_ray.simulator.wa_web.testing import web_simulator_process
from wa_ray.storage.embedded import EmbeddedRedis
from wa_ray.storage.messages import MessageStore, OutboundMessage
from wa_ray.storage.redis_client import connect
from wa_ray.storage.stream_watch import StreamWatch

HERE = Path(__file__).resolve().parent
WS, SID = "probe-ws", "probe1"
SESSION_PHONE, RECIPIENT = "15557230001", "15557230002"
GROUP = "probe"  # CDP object group of every remote object the probe holds; released after each sample
# BrowserHost's own routing of a page signal (messages, acks, lifecycle), called on a stand-in holding what
# it reads of its host: the class itself cannot be built without Ray.
HOST_CLASS = BrowserHost.__ray_metadata__.modified_class
ROUTE = HOST_CLASS._route

# Functions whose [[Scopes]] reach each script's closure state (label -> expression in the page).
CLOSURE_ROOTS: dict[str, str] = {
    "bridge.js": "window.__waray.sendMany",
    "bridge_conversations.js": "window.__waray.chats",
    "sim app.js": "window.require",
    "sim app.js (messaging)": "window.require('WAWebSendMsgChatAction').addAndSendMsgToChat",
    "sim history.js": "window.require('WAWebChatLoadMessages').loadEarlierMsgs",
    "sim inbound.js": "window.require('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt",
    "sim kinds.js": "window.require('WAWebSendReactionMsgAction').sendReactionToMsg",
    "sim media.js": "window.require('WAWebMediaStorage').getOrCreateMediaObject",
}
# The size of any object: a Map/Set's size, an array's or collection's length, else its own keys.
_SIZE_FN = """function () {
  try {
    if (this instanceof Map || this instanceof Set) return this.size;
    if (typeof this.length === 'number') return this.length;
    return Object.keys(this).length;
  } catch (e) { return -1; }
}"""
_STORE_COUNTS = """() => {
  const C = window.require('WAWebCollections');
  const chats = C.Chat.getModelsArray();
  const ctl = globalThis.__playwright__binding__controller__;
  const emit = ctl && ctl._bindings && ctl._bindings.get('__warayEmit');
  return {
    'sim Msg': C.Msg.length,
    'sim Msg index': C.Msg._index.size,
    'sim chat.msgs (all chats)': chats.reduce((n, c) => n + (c.msgs ? c.msgs.length : 0), 0),
    'sim Chat': chats.length,
    'sim Contact': C.Contact.length,
    'sim Msg listeners (all)': C.Msg._events ? Object.values(C.Msg._events).reduce((n, l) => n + l.length, 0) : 0,
    'playwright __warayEmit callbacks': emit ? emit.callbacks.size : null,
    'playwright __warayEmit calls': emit ? emit.lastSeq : null,
    'DOM elements': document.getElementsByTagName('*').length,
  };
}"""
_MSG_COUNT = "window.require && window.require('WAWebCollections') ? window.require('WAWebCollections').Msg.length : 0"
# The release test: every message out of the simulator's store (Msg and each chat's msgs).
_RELEASE = """() => {
  const C = window.require('WAWebCollections');
  let n = 0;
  for (const chat of C.Chat.getModelsArray()) if (chat.msgs) chat.msgs.remove(chat.msgs.getModelsArray(), { silent: true });
  for (const m of C.Msg.getModelsArray()) { C.Msg.remove(m, { silent: true }); n += 1; }
  return n;
}"""


# ------------------------------------------------------------------ processes
@dataclass(frozen=True)
class ChromiumPids:
    browser: int
    renderers: tuple[int, ...]
    others: tuple[int, ...]


def chromium_pids(root: int) -> ChromiumPids:
    """Chromium under this process (via the Playwright driver): its browser process, renderers, the rest."""
    table = process_table()
    ours = [table[p] for p in descendants(root, table) if p in table]
    # Chromium's child processes rewrite their command line into one string: match on the joined title.
    chrome = [p for p in ours if p.argv and "chrom" in Path(p.title.split()[0]).name]
    browser = [p.pid for p in chrome if "--type=" not in p.title and "crashpad" not in p.title.split()[0]]
    renderers = tuple(p.pid for p in chrome if "--type=renderer" in p.title)
    others = tuple(p.pid for p in chrome if p.pid not in browser and p.pid not in renderers)
    if len(browser) != 1:
        raise RuntimeError(f"expected one Chromium browser process, found {browser}")
    return ChromiumPids(browser[0], renderers, others)


def pss_kib(pids: tuple[int, ...] | list[int]) -> dict[str, int]:
    out = {"pss": 0, "pss_anon": 0, "pss_file": 0, "pss_shmem": 0, "private_dirty": 0}
    for pid in pids:
        mem = rollup(pid)
        if mem is not None:
            for k in out:
                out[k] += getattr(mem, k)
    return out


# ------------------------------------------------------------------ CDP reads
class PageProbe:
    """The probe's own CDP session on the page (separate from Playwright's)."""

    def __init__(self, cdp: Any, page: Any) -> None:
        self._cdp, self._page = cdp, page

    async def message_count(self) -> int:
        reply = await self._cdp.send("Runtime.evaluate", {"expression": _MSG_COUNT, "returnByValue": True})
        return int(reply["result"].get("value") or 0)

    async def store_counts(self) -> dict[str, Any]:
        return dict(await self._page.evaluate(_STORE_COUNTS))

    async def closure_sizes(self) -> dict[str, int]:
        """`label: variable` -> size, for every object held in the closures the roots can see."""
        out: dict[str, int] = {}
        try:
            for label, expression in CLOSURE_ROOTS.items():
                reply = await self._cdp.send("Runtime.evaluate", {"expression": expression, "objectGroup": GROUP})
                fn = reply["result"].get("objectId")
                if not fn:
                    continue
                props = await self._cdp.send("Runtime.getProperties", {"objectId": fn, "ownProperties": True})
                scopes = next((p["value"]["objectId"] for p in props.get("internalProperties", [])
                               if p["name"] == "[[Scopes]]"), None)
                if scopes is None:
                    continue
                for scope in (await self._cdp.send("Runtime.getProperties", {"objectId": scopes,
                                                                           "ownProperties": True}))["result"]:
                    value = scope.get("value") or {}
                    if not str(value.get("description", "")).startswith("Closure") or not value.get("objectId"):
                        continue
                    variables = await self._cdp.send("Runtime.getProperties", {"objectId": value["objectId"],
                                                                               "ownProperties": True})
                    for var in variables["result"]:
                        await self._size_of(out, label, var)
        finally:
            await self._cdp.send("Runtime.releaseObjectGroup", {"objectGroup": GROUP})
        return out

    async def _size_of(self, out: dict[str, int], label: str, var: dict[str, Any]) -> None:
        value = var.get("value") or {}
        if value.get("type") != "object" or value.get("subtype") == "null" or not value.get("objectId"):
            return
        key = f"{label}: {var['name']}"
        if key in out:
            return
        reply = await self._cdp.send("Runtime.callFunctionOn", {"objectId": value["objectId"],
                                                                "functionDeclaration": _SIZE_FN,
                                                                "returnByValue": True, "objectGroup": GROUP})
        out[key] = int(reply["result"].get("value", -1))

    async def heap_usage(self) -> dict[str, float]:
        return {k: float(v) for k, v in (await self._cdp.send("Runtime.getHeapUsage")).items()}

    async def heap_after_gc(self) -> dict[str, float]:
        for _ in range(2):  # the second pass collects what the first one's finalizers let go
            await self._cdp.send("HeapProfiler.collectGarbage")
        usage = await self._cdp.send("Runtime.getHeapUsage")
        return {k: float(v) for k, v in usage.items()}

    async def metrics(self) -> dict[str, float]:
        reply = await self._cdp.send("Performance.getMetrics")
        return {m["name"]: float(m["value"]) for m in reply["metrics"]}

    async def release_store(self) -> int:
        return int(await self._page.evaluate(_RELEASE))

    async def heap_histogram(self, top: int = 25) -> list[dict[str, Any]]:
        """A heap snapshot of the page, summed by node type and constructor name (count, self bytes)."""
        chunks: list[str] = []
        self._cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda p: chunks.append(p["chunk"]))
        await self._cdp.send("HeapProfiler.enable")
        await self._cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
        await self._cdp.send("HeapProfiler.disable")
        snap = json.loads("".join(chunks))
        meta = snap["snapshot"]["meta"]
        fields = meta["node_fields"]
        types = meta["node_types"][0]
        width = len(fields)
        i_type, i_name, i_size = fields.index("type"), fields.index("name"), fields.index("self_size")
        nodes, strings = snap["nodes"], snap["strings"]
        count: Counter[str] = Counter()
        size: Counter[str] = Counter()
        for base in range(0, len(nodes), width):
            kind = types[nodes[base + i_type]]
            name = strings[nodes[base + i_name]] if kind in ("object", "closure", "native") else ""
            key = f"{kind}:{name[:60]}" if name else kind
            count[key] += 1
            size[key] += nodes[base + i_size]
        return [{"what": k, "count": count[k], "self_bytes": v} for k, v in size.most_common(top)]


# ------------------------------------------------------------------ one sample
@dataclass
class Sample:
    t_s: float
    msgs: int  # messages in the page's store (sim Msg)
    out_sent: int
    in_sent: int
    counts: dict[str, Any]
    closures: dict[str, int]
    heap: dict[str, float]
    metrics: dict[str, float]
    renderer_kib: dict[str, int]
    browser_kib: dict[str, int]
    chromium_kib: dict[str, int]
    renderer_pids: list[int] = field(default_factory=list)  # the page's first
    renderers_pss_kib: dict[str, int] = field(default_factory=dict)  # every renderer (the spare too)
    before_gc: dict[str, float] = field(default_factory=dict)  # JS heap used and page renderer PSS, no forced GC


@dataclass
class Traffic:
    out_sent: int = 0
    in_sent: int = 0
    in_errors: int = 0


async def take_sample(probe: PageProbe, t0: float, traffic: Traffic, root_pid: int) -> Sample:
    # as the page is between samples (no forced GC): its renderer's PSS and its JS heap with its garbage
    natural = {"heap_used": (await probe.heap_usage())["usedSize"],
               "renderer_pss_kib": max(pss_kib((pid,))["pss"] for pid in chromium_pids(root_pid).renderers)}
    counts = await probe.store_counts()
    closures = await probe.closure_sizes()
    heap = await probe.heap_after_gc()
    metrics = await probe.metrics()
    pids = chromium_pids(root_pid)
    msgs = int(counts["sim Msg"])
    # Chromium keeps a spare renderer beside the page's: the page's is the larger one (its PSS is ~4x).
    by_pid = {pid: pss_kib((pid,)) for pid in pids.renderers}
    page_pid = max(by_pid, key=lambda pid: by_pid[pid]["pss"])
    return Sample(round(time.monotonic() - t0, 1), msgs, traffic.out_sent, traffic.in_sent, counts, closures, heap,
                  metrics, by_pid[page_pid], pss_kib((pids.browser,)),
                  pss_kib((pids.browser, *pids.renderers, *pids.others)),
                  [page_pid, *(p for p in pids.renderers if p != page_pid)],
                  {str(pid): m["pss"] for pid, m in by_pid.items()}, natural)


# ------------------------------------------------------------------ the session
@dataclass
class Linked:
    qr: asyncio.Future[str]
    ready: asyncio.Event


class RouteHost:
    """What BrowserHost._route reads of its host: the inbound recorder and the sender's connected switch."""

    _track_sendable = staticmethod(HOST_CLASS._track_sendable)

    def __init__(self, inbound: InboundRecorder) -> None:
        self._inbound = inbound


def on_signal_for(host: RouteHost, box: dict[str, HostedSession], linked: Linked) -> Any:
    async def on_signal(kind: PageSignal, payload: dict[str, Any]) -> None:
        if kind is PageSignal.QR and not linked.qr.done():
            linked.qr.set_result(payload["qr"])
        if kind is PageSignal.READY:
            linked.ready.set()
        hosted = box.get("hosted")
        if hosted is not None:
            await ROUTE(host, hosted, kind, payload)
    return on_signal


async def send_outbound(store: MessageStore, n: int, rate: float, traffic: Traffic) -> None:
    """Accepted into Redis as the API accepts them, open-loop at `rate` per second."""
    start = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await store.accept(OutboundMessage(new_id("msg"), WS, SID, RECIPIENT, f"probe out #{i:06d} " + "x" * 40,
                                           "normal"), None)
        traffic.out_sent += 1


async def send_inbound(phones: httpx.AsyncClient, n: int, rate: float, traffic: Traffic) -> None:
    """The recipient phone writes to the session's number, open-loop at `rate` per second."""
    start = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        reply = await phones.post(f"/_phone/{RECIPIENT}/messages",
                                  json={"to": SESSION_PHONE, "body": f"probe in #{i:06d} " + "y" * 40})
        if reply.status_code == 200:
            traffic.in_sent += 1
        else:
            traffic.in_errors += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    root = os.getpid()
    with tempfile.TemporaryDirectory(prefix="page-heap-") as tmp, \
            EmbeddedRedis(Path(tmp) / "redis", fsync="everysec") as redis_server, \
            web_simulator_process() as sim:
        write_key_file(Path(tmp) / "master.key", [MasterKey.from_b64(MasterKey.generate_b64())])
        config = RuntimeConfig(redis_url=redis_server.url, web_url=sim.url + "/", data_dir=tmp,
                               master_key_file=str(Path(tmp) / "master.key"), chromium=default_chromium(),
                               pacing=False, typing_delay=False, session_hosting="host")
        redis = connect(config.redis_url)
        phones = httpx.AsyncClient(base_url=sim.url, timeout=10)
        await phones.put("/_sim/config", json={"page_cost": args.page_cost})
        watch = StreamWatch(redis)
        pw = await async_playwright().start()
        browser = await pw.chromium.launch(executable_path=config.chromium,
                                           args=chromium_launch_flags(config.chromium_flags), headless=True)
        linked = Linked(asyncio.get_running_loop().create_future(), asyncio.Event())
        box: dict[str, HostedSession] = {}
        page = PageSession(browser, config.web_url, None)
        await page.prepare()
        page.adopt(on_signal_for(RouteHost(InboundRecorder(redis, config)), box, linked))
        sender = SessionSender(redis, WS, SID, page, config, watch)
        hosted = box["hosted"] = HostedSession(WS, SID, None, page, sender)
        hosted.tasks.append(asyncio.get_running_loop().create_task(sender.run()))
        try:
            await page.open(None)
            qr = await asyncio.wait_for(linked.qr, 30)
            (await phones.post(f"/_phone/{SESSION_PHONE}/scan", json={"qr": qr})).raise_for_status()
            await asyncio.wait_for(linked.ready.wait(), 30)
            await asyncio.wait_for(sender.connected.wait(), 10)
            assert page.page is not None
            cdp = await page.context.new_cdp_session(page.page)  # type: ignore[union-attr]
            await cdp.send("Performance.enable")
            probe = PageProbe(cdp, page.page)
            return await drive(args, probe, MessageStore(redis), phones, root)
        finally:
            await HOST_CLASS._close(hosted)
            await watch.close()
            await browser.close()
            await pw.stop()
            await phones.aclose()
            await redis.aclose()


async def drive(args: argparse.Namespace, probe: PageProbe, store: MessageStore, phones: httpx.AsyncClient,
                root: int) -> dict[str, Any]:
    traffic = Traffic()
    t0 = time.monotonic()
    samples = [await take_sample(probe, t0, traffic, root)]
    print(line(samples[-1]), flush=True)
    rate_in = args.rate * args.inbound / max(1, args.outbound)
    load = [asyncio.create_task(send_outbound(store, args.outbound, args.rate, traffic)),
            asyncio.create_task(send_inbound(phones, args.inbound, rate_in, traffic))]
    target = args.outbound + args.inbound
    next_at = samples[0].msgs + args.every
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        n = await probe.message_count()
        if n >= next_at:
            samples.append(await take_sample(probe, t0, traffic, root))
            print(line(samples[-1]), flush=True)
            next_at += args.every
        if n >= samples[0].msgs + target and all(t.done() for t in load):
            break
        await asyncio.sleep(0.2)
    for task in load:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*load, return_exceptions=True)
    await asyncio.sleep(2)  # the last acks (2, 3) land
    final = await take_sample(probe, t0, traffic, root)
    samples.append(final)
    print(line(final), flush=True)
    histogram = await probe.heap_histogram() if args.snapshot else []
    released = await probe.release_store()
    after = await take_sample(probe, t0, traffic, root)
    print("after releasing the store:", line(after), flush=True)
    return {"args": vars(args), "traffic": asdict(traffic), "samples": [asdict(s) for s in samples],
            "histogram": histogram, "released_msgs": released, "after_release": asdict(after)}


def line(s: Sample) -> str:
    return (f"t {s.t_s:6.1f}s msgs {s.msgs:5d} (out {s.out_sent}, in {s.in_sent}) heap {s.heap['usedSize'] / 1e6:7.2f} MB"
            f" / {s.heap['totalSize'] / 1e6:6.2f} MB, nodes {s.metrics.get('Nodes', 0):.0f}, listeners"
            f" {s.metrics.get('JSEventListeners', 0):.0f}, renderer PSS {s.renderer_kib['pss'] / 1024:7.1f} MiB"
            f" (all renderers KiB {s.renderers_pss_kib}), browser {s.browser_kib['pss'] / 1024:6.1f} MiB, chromium"
            f" {s.chromium_kib['pss'] / 1024:7.1f} MiB; emit pending {s.counts.get('playwright __warayEmit callbacks')}")


# ------------------------------------------------------------------ the report
def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of y over x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


SERIES: dict[str, Any] = {
    "JS heap used after GC (bytes)": lambda s: s["heap"]["usedSize"],
    "JS heap total (bytes)": lambda s: s["heap"]["totalSize"],
    "JS heap used before the forced GC (bytes)": lambda s: s["before_gc"]["heap_used"],
    "page renderer PSS before the forced GC (bytes)": lambda s: s["before_gc"]["renderer_pss_kib"] * 1024,
    "page renderer PSS (bytes)": lambda s: s["renderer_kib"]["pss"] * 1024,
    "page renderer PSS anon (bytes)": lambda s: s["renderer_kib"]["pss_anon"] * 1024,
    "page renderer private dirty (bytes)": lambda s: s["renderer_kib"]["private_dirty"] * 1024,
    "browser process PSS (bytes)": lambda s: s["browser_kib"]["pss"] * 1024,
    "all Chromium PSS (bytes)": lambda s: s["chromium_kib"]["pss"] * 1024,
    "DOM Nodes": lambda s: s["metrics"].get("Nodes", 0),
    "JSEventListeners": lambda s: s["metrics"].get("JSEventListeners", 0),
    "LayoutObjects": lambda s: s["metrics"].get("LayoutObjects", 0),
}


def report(result: dict[str, Any], warmup: int) -> dict[str, Any]:
    samples = result["samples"]
    base = samples[0]["msgs"]
    fit = [s for s in samples if s["msgs"] - base >= warmup] or samples
    xs = [float(s["msgs"]) for s in fit]
    per_msg = {name: slope(xs, [float(get(s)) for s in fit]) for name, get in SERIES.items()}
    counts = {k: slope(xs, [float(s["counts"].get(k) or 0) for s in fit]) for k in samples[-1]["counts"]}
    closures = {k: slope(xs, [float(s["closures"].get(k, 0)) for s in fit]) for k in samples[-1]["closures"]}
    grown = {k: (samples[0]["closures"].get(k), samples[-1]["closures"][k]) for k in samples[-1]["closures"]
             if samples[-1]["closures"][k] != samples[0]["closures"].get(k)}
    last, after = samples[-1], result["after_release"]
    freed = last["heap"]["usedSize"] - after["heap"]["usedSize"]
    return {"per_msg": per_msg, "counts_per_msg": counts, "closures_per_msg": closures, "closures_changed": grown,
            "release": {"msgs": result["released_msgs"], "heap_freed_bytes": freed,
                        "bytes_per_msg": freed / max(1, result["released_msgs"]),
                        "renderer_pss_after_kib": after["renderer_kib"]["pss"],
                        "renderer_pss_before_kib": last["renderer_kib"]["pss"]},
            "fit": {"samples": len(fit), "from_msgs": fit[0]["msgs"], "to_msgs": fit[-1]["msgs"]}}


def markdown(result: dict[str, Any], rep: dict[str, Any]) -> str:
    rows = ["| msgs in page | t s | out sent | in sent | JS heap used MB (before GC) | JS heap used MB | JS heap total MB"
            " | Nodes | JS listeners |"
            " page renderer PSS MiB | its anon MiB | browser PSS MiB | all Chromium PSS MiB | emit callbacks |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in [*result["samples"], result["after_release"]]:
        rows.append(f"| {s['msgs']} | {s['t_s']} | {s['out_sent']} | {s['in_sent']}"
                    f" | {s['before_gc']['heap_used'] / 1e6:.2f} | {s['heap']['usedSize'] / 1e6:.2f}"
                    f" | {s['heap']['totalSize'] / 1e6:.2f} | {s['metrics'].get('Nodes', 0):.0f}"
                    f" | {s['metrics'].get('JSEventListeners', 0):.0f} | {s['renderer_kib']['pss'] / 1024:.1f}"
                    f" | {s['renderer_kib']['pss_anon'] / 1024:.1f} | {s['browser_kib']['pss'] / 1024:.1f}"
                    f" | {s['chromium_kib']['pss'] / 1024:.1f}"
                    f" | {s['counts'].get('playwright __warayEmit callbacks')} |")
    rows[-1] = rows[-1].replace(f"| {result['after_release']['msgs']} |", "| store released |", 1)
    per = ["| series | per message |", "| --- | ---: |"]
    per += [f"| {k} | {v:,.1f} |" for k, v in rep["per_msg"].items()]
    per += [f"| count: {k} | {v:.3f} |" for k, v in rep["counts_per_msg"].items()]
    changed = ["| closure variable | first | last |", "| --- | ---: | ---: |"]
    changed += [f"| {k} | {a} | {b} |" for k, (a, b) in rep["closures_changed"].items()]
    hist = ["| heap snapshot: what | count | self bytes |", "| --- | ---: | ---: |"]
    hist += [f"| {h['what']} | {h['count']} | {h['self_bytes']} |" for h in result["histogram"]]
    rel = rep["release"]
    return "\n".join([
        "## Samples", *rows, "",
        f"## Per message (least squares over {rep['fit']['samples']} samples, {rep['fit']['from_msgs']}-"
        f"{rep['fit']['to_msgs']} messages in the page)", *per, "",
        f"## Release test: {rel['msgs']} messages removed from Msg and chat.msgs -> JS heap freed "
        f"{rel['heap_freed_bytes'] / 1e6:.2f} MB = {rel['bytes_per_msg']:,.0f} bytes per message",
        "", "## Closure variables that changed (bridge and simulator scripts)", *changed, "",
        "## Heap snapshot before the release (top by self size)", *hist, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", dest="outbound", type=int, default=3000, help="outbound messages")
    parser.add_argument("--in", dest="inbound", type=int, default=750, help="inbound messages")
    parser.add_argument("--rate", type=float, default=20.0, help="outbound messages per second (inbound: pro rata)")
    parser.add_argument("--every", type=int, default=250, help="sample every this many messages in the page")
    parser.add_argument("--warmup", type=int, default=250, help="messages left out of the per-message fit")
    parser.add_argument("--page-cost", default="light", choices=("light", "heavy"))
    parser.add_argument("--no-snapshot", dest="snapshot", action="store_false")
    parser.add_argument("--timeout", type=float, default=540.0, help="stop the traffic after this many seconds")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON and Markdown go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    rep = report(result, args.warmup)
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.results / f"page-heap-{stamp}.json").write_text(json.dumps({**result, "report": rep}, indent=1,
                                                                      default=str))
    text = markdown(result, rep)
    (args.results / f"page-heap-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
