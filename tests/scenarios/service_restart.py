"""Link N sessions, stop the whole service (Ray, Serve, Chromium, embedded Redis), start it again on the
same data dir, and time how long until every session is connected again, counting QR codes issued."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson

from wa_ray.simulator.wa_web.testing import running_web_simulator
from tests.scenarios.common import client, link_many, qr_events_since, scenario_settings, wait_all
from wa_ray.entry.service import Service

WS = "restart"


def run(sessions: int) -> dict:
    phones = {f"r{i:02d}": f"1555300{i:04d}" for i in range(sessions)}
    with running_web_simulator() as sim, tempfile.TemporaryDirectory() as tmp:
        settings = scenario_settings(Path(tmp), sim.url + "/")
        service = Service(settings).start()
        try:
            linked_at = time.monotonic()
            asyncio.run(_link(settings, sim.url, phones))
            link_s = time.monotonic() - linked_at
            asyncio.run(asyncio.sleep(1.0))  # let the last auth states reach disk
        finally:
            service.stop()
        restart_ms = int(time.time() * 1000)
        started = time.monotonic()
        service = Service(settings).start()
        try:
            up_s = time.monotonic() - started
            connected_s = asyncio.run(_wait(settings, sessions)) + up_s
            qr_after = asyncio.run(_qr(settings, restart_ms))
        finally:
            service.stop()
    return {"sessions": sessions, "link_s": round(link_s, 2), "service_start_s": round(up_s, 2),
            "restart_to_all_connected_s": round(connected_s, 2), "qr_after_restart": qr_after}


async def _link(settings, sim_url, phones) -> None:
    async with client(settings) as api:
        await link_many(api, sim_url, WS, phones)


async def _wait(settings, count: int) -> float:
    async with client(settings) as api:
        return await wait_all(api, WS, "connected", count, timeout=120)


async def _qr(settings, since_ms: int) -> int:
    async with client(settings) as api:
        return await qr_events_since(api, WS, since_ms)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=3)
    result = run(parser.parse_args().sessions)
    sys.stdout.write("RESULT " + orjson.dumps(result).decode() + "\n")
