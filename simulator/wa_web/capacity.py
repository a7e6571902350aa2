"""How many linked devices one `wa-sim web` process carries, and at what cost.

    python -m wa_ray.simulator.wa_web.capacity --devices 100 [--messages 20] [--json out.json]

Starts `wa-sim web` as its own process (so /proc/<pid> is the simulator and
nothing else), then:

1. link: one shared Chromium, a browser context per device; each page shows a
   QR that the phone API scans (devices linked `--concurrency` at a time).
2. idle: all devices connected, nobody talking, for `--idle` seconds.
3. browser: every page sends `--messages` texts through the whatsapp-web.js
   send path to the next device's number; done when every sender saw ack 3 and
   every recipient page got all its inbound messages (checked exactly-once
   against the phone-side inbox).
4. ws: the same traffic from plain WebSocket clients speaking the page
   protocol, no Chromium: the simulator's own ceiling on this machine.

For each phase it reports wall time, messages/s, and CPU (% of one core) and
RSS of the simulator process, the Chromium processes and this harness.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Self

import httpx

from wa_ray.simulator.wa_web.testing import (
    CHROMIUM,
    CHROMIUM_ARGS,
    link_page,
    web_simulator_process,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_BASE = 1_555_700_000
WS_BASE = 1_555_900_000

# Count inbound messages on the page (what whatsapp-web.js turns into `message`).
COUNT_INBOUND_JS = """() => {
  window.__inbound = 0;
  window.require('WAWebCollections').Msg.on('add', (m) => { if (!m.id.fromMe) window.__inbound += 1; });
}"""

WAIT_INBOUND_JS = """(n) => new Promise((resolve) => {
  const tick = () => (window.__inbound >= n ? resolve(window.__inbound) : setTimeout(tick, 20));
  tick();
})"""

# n texts through whatsapp-web.js's send path; resolves when all are read (ack 3).
BURST_JS = """async ({ to, n, tag }) => {
  const W = window.require;
  const { chat } = await W('WAWebFindChatAction').findOrCreateLatestChat(W('WAWebWidFactory').createWid(to));
  const from = W('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const MsgKey = W('WAWebMsgKey');
  const Msg = W('WAWebCollections').Msg;
  const keys = [];
  for (let i = 0; i < n; i++) keys.push(new MsgKey({ from, to: chat.id, id: await MsgKey.newId(), selfDir: 'out' }));
  const waiting = new Set(keys.map((k) => k._serialized));
  const read = new Promise((resolve) => {
    if (!waiting.size) { resolve(); return; }
    const onAck = (msg, ack) => {
      if (ack >= 3 && waiting.delete(msg.id._serialized) && waiting.size === 0) { Msg.off('change:ack', onAck); resolve(); }
    };
    Msg.on('change:ack', onAck);
  });
  const results = keys.map((id, i) => W('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {
    id, ack: 0, body: `${tag} ${i}`, from, to: chat.id, local: true, self: 'out',
    t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
  })[1]);
  const failed = (await Promise.all(results)).filter((r) => r.messageSendResult !== 'OK').length;
  if (!failed) await read;
  return { failed, ids: keys.map((k) => k.id) };
}"""


# ----------------------------------------------------------------- /proc
@dataclass
class ProcSample:
    ticks: int  # utime + stime, in clock ticks
    rss_kb: int
    pss_kb: int
    count: int


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def sample(pids: Iterable[int]) -> ProcSample:
    ticks = rss = pss = count = 0
    for pid in pids:
        st = _stat(pid)
        if st is None:
            continue
        ticks += st[1]
        rss += _status_kb(pid, "VmRSS")
        pss += _pss_kb(pid)
        count += 1
    return ProcSample(ticks, rss, pss, count)


class Groups:
    """The simulator process, the Chromium processes, and this harness (with the Playwright driver)."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid

    def pids(self) -> dict[str, list[int]]:
        me = os.getpid()
        sim_tree = {self.sim_pid, *descendants(self.sim_pid)}
        rest = [p for p in descendants(me) if p not in sim_tree]
        chromium = [p for p in rest if "chromium" in _cmdline(p)]
        return {"simulator": [self.sim_pid], "chromium": chromium, "harness": [me, *set(rest) - set(chromium)]}

    def sample(self) -> dict[str, ProcSample]:
        return {name: sample(pids) for name, pids in self.pids().items()}


@dataclass
class Phase:
    name: str
    wall_s: float
    messages: int = 0
    cpu_pct: dict[str, float] = field(default_factory=dict)  # % of one core over the phase
    rss_mb: dict[str, float] = field(default_factory=dict)  # at the end of the phase
    pss_mb: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


class Meter:
    def __init__(self, groups: Groups, name: str) -> None:
        self.groups = groups
        self.name = name

    def __enter__(self) -> Self:
        self.start = self.groups.sample()
        self.t0 = time.monotonic()
        self.phase = Phase(self.name, 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        end = self.groups.sample()
        self.phase.wall_s = wall
        for name, s in end.items():
            # Processes that exited during the phase take their ticks with them: clamp at 0.
            used = max(0, s.ticks - self.start[name].ticks) / CLK_TCK
            self.phase.cpu_pct[name] = round(100 * used / wall, 1) if wall > 0 else 0.0
            self.phase.rss_mb[name] = round(s.rss_kb / 1024, 1)
            self.phase.pss_mb[name] = round(s.pss_kb / 1024, 1)
            self.phase.extra[f"{name}_processes"] = s.count


# --------------------------------------------------------------- browser
async def _browser_phases(
    url: str, groups: Groups, devices: int, messages: int, concurrency: int, idle_s: float
) -> tuple[list[Phase], dict[str, Any]]:
    from playwright.async_api import async_playwright

    numbers = [str(PAGE_BASE + i) for i in range(devices)]
    phases: list[Phase] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            link_times: list[float] = []
            gate = asyncio.Semaphore(concurrency)

            async def link_one(number: str) -> Any:
                async with gate:
                    t0 = time.monotonic()
                    ctx = await browser.new_context()
                    page = await link_page(ctx, url, number, timeout=60_000)
                    await page.evaluate(COUNT_INBOUND_JS)
                    link_times.append(time.monotonic() - t0)
                    return page

            with Meter(groups, "link") as m:
                pages = await asyncio.gather(*(link_one(n) for n in numbers))
            m.phase.extra.update(
                devices=devices,
                per_device_s_p50=round(statistics.median(link_times), 3),
                per_device_s_max=round(max(link_times), 3),
            )
            phases.append(m.phase)

            with Meter(groups, "idle") as m:
                await asyncio.sleep(idle_s)
            phases.append(m.phase)

            async def burst(i: int) -> dict[str, Any]:
                to = numbers[(i + 1) % devices]
                return dict(await pages[i].evaluate(BURST_JS, {"to": to, "n": messages, "tag": f"from {numbers[i]}"}))

            with Meter(groups, "browser") as m:
                results = await asyncio.gather(
                    *(burst(i) for i in range(devices)),
                    *(p.evaluate(WAIT_INBOUND_JS, messages) for p in pages),
                )
            m.phase.messages = devices * messages
            phases.append(m.phase)
            sent = results[:devices]
            failed = sum(r["failed"] for r in sent)
            check = await _check_exactly_once(url, numbers, [r["ids"] for r in sent])
            m.phase.extra.update(failed=failed, **check)
            for page in pages:
                await page.context.close()
        finally:
            await browser.close()
    return phases, {"link_times_s": sorted(round(t, 3) for t in link_times)}


async def _check_exactly_once(url: str, numbers: list[str], sent_ids: list[list[str]]) -> dict[str, Any]:
    """Every recipient's inbox holds exactly what its sender sent, once each."""
    bad = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i, ids in enumerate(sent_ids):
            to = numbers[(i + 1) % len(numbers)]
            inbox = (await http.get(f"/_phone/{to}/inbox")).json()["messages"]
            got = [m["id"] for m in inbox if m["from"] == numbers[i]]
            bad += got != ids
    return {"inboxes_checked": len(sent_ids), "inboxes_wrong": bad}


# -------------------------------------------------------------------- ws
async def _ws_phase(url: str, groups: Groups, devices: int, messages: int) -> Phase:
    """The page protocol without Chromium: what the simulator alone sustains."""
    import websockets

    ws_url = url.replace("http://", "ws://") + "/ws"
    numbers = [str(WS_BASE + i) for i in range(devices)]

    def b64() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    async def recv_until(ws: Any, kind: str) -> dict[str, Any]:
        while True:
            data = json.loads(await ws.recv())
            if data.get("type") == kind:
                return dict(data)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        conns = []
        for number in numbers:
            ws = await websockets.connect(ws_url, max_queue=None)
            keys = {"noise_pub": b64(), "identity_pub": b64(), "adv_secret": b64(), "platform": "WEB"}
            await ws.send(json.dumps({"type": "hello", "creds": None, "keys": keys}))
            ref = (await recv_until(ws, "ref"))["ref"]
            qr = ",".join([ref, keys["noise_pub"], keys["identity_pub"], keys["adv_secret"], "WEB"])
            r = await http.post(f"/_phone/{number}/scan", json={"qr": qr})
            r.raise_for_status()
            await recv_until(ws, "paired")
            conns.append(ws)

        async def device(i: int) -> tuple[int, int]:
            ws = conns[i]
            to = numbers[(i + 1) % devices] + "@c.us"
            read = inbound = 0
            for n in range(messages):
                mid = f"3EB0{secrets.token_hex(8).upper()}"
                key = f"true_{to}_{mid}"
                await ws.send(json.dumps({"type": "send", "msg": {"key": key, "id": mid, "to": to, "body": f"m{n}"}}))
            while read < messages or inbound < messages:
                data = json.loads(await ws.recv())
                if data.get("type") == "ack" and data.get("ack") == 3:
                    read += 1
                elif data.get("type") == "msg":
                    inbound += 1
            return read, inbound

        with Meter(groups, "ws") as m:
            done = await asyncio.gather(*(device(i) for i in range(devices)))
        m.phase.messages = devices * messages
        m.phase.extra.update(devices=devices, all_read=all(r == messages for r, _ in done))
        for ws in conns:
            await ws.close()
    return m.phase


# ------------------------------------------------------------------- run
def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


async def run_capacity(
    devices: int = 100,
    messages: int = 20,
    concurrency: int = 8,
    idle_s: float = 5.0,
    ws_devices: int | None = None,
    ws_messages: int | None = None,
) -> dict[str, Any]:
    """Run every phase against a fresh `wa-sim web` process; returns the figures."""
    started = time.time()
    load_before = _loadavg()
    with web_simulator_process(log_level="warning") as sim:
        groups = Groups(sim.pid)
        phases, details = await _browser_phases(sim.url, groups, devices, messages, concurrency, idle_s)
        phases.append(await _ws_phase(sim.url, groups, ws_devices or devices, ws_messages or messages * 10))
        async with httpx.AsyncClient(base_url=sim.url) as http:
            stats = (await http.get("/_sim/stats")).json()
        sim_peak_rss_mb = round(_status_kb(sim.pid, "VmHWM") / 1024, 1)
    return {
        "devices": devices,
        "messages_per_device": messages,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": _loadavg()},
        "started_at": started,
        "simulator_peak_rss_mb": sim_peak_rss_mb,
        "phases": [{**asdict(p), "msgs_per_s": round(p.msgs_per_s, 1)} for p in phases],
        "sim_stats": stats,
        **details,
    }


def format_report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        (
            f"devices={result['devices']} messages/device={result['messages_per_device']} cpus={m['cpus']} "
            f"loadavg before={m['loadavg_before']} after={m['loadavg_after']}"
        ),
        (
            f"{'phase':8} {'wall s':>8} {'msgs':>6} {'msgs/s':>8} {'sim cpu%':>9} {'sim rss':>8} "
            f"{'chrome cpu%':>11} {'chrome pss':>10} {'harness cpu%':>12}"
        ),
    ]
    for p in result["phases"]:
        lines.append(
            f"{p['name']:8} {p['wall_s']:8.2f} {p['messages']:6d} {p['msgs_per_s']:8.1f} "
            f"{p['cpu_pct']['simulator']:9.1f} {p['rss_mb']['simulator']:6.1f}MB "
            f"{p['cpu_pct']['chromium']:11.1f} {p['pss_mb']['chromium']:8.0f}MB {p['cpu_pct']['harness']:12.1f}"
        )
    link = next(p for p in result["phases"] if p["name"] == "link")
    browser = next(p for p in result["phases"] if p["name"] == "browser")
    lines.append(
        f"link: {link['extra']['devices']} devices in {link['wall_s']:.1f} s "
        f"(per device p50 {link['extra']['per_device_s_p50']} s, max {link['extra']['per_device_s_max']} s)"
    )
    lines.append(
        f"browser phase: failed={browser['extra']['failed']} "
        f"inboxes wrong={browser['extra']['inboxes_wrong']}/{browser['extra']['inboxes_checked']}"
    )
    lines.append(f"simulator peak RSS {result['simulator_peak_rss_mb']} MB; stats {json.dumps(result['sim_stats'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wa_ray.simulator.wa_web.capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20, help="texts each device sends in the browser phase")
    parser.add_argument("--concurrency", type=int, default=8, help="devices linked at the same time")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds all devices sit connected and quiet")
    parser.add_argument("--ws-devices", type=int, default=None, help="WebSocket-only clients (default: --devices)")
    parser.add_argument("--ws-messages", type=int, default=None, help="texts per WebSocket client (default: 10x)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run_capacity(args.devices, args.messages, args.concurrency, args.idle, args.ws_devices, args.ws_messages)
    )
    print(format_report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
