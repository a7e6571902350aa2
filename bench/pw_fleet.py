"""The naive baseline for `bench density`: raw Playwright, one Chromium per session, in a child process.

Each session is its own `chromium.launch()` (same binary and flags as wa-ray's
BrowserHost) with one context and one page, linked to the simulator exactly
like a real client: the QR string is read from the page modules
(`WAWebConnModel`...) with simulator/wa_web/testing.py's helpers and scanned
through the phone API; the session counts once the socket is CONNECTED.

Protocol (JSON lines, as bench/wwebjs_fleet.js): stdin `{"cmd": "grow", "n": n, "concurrency": c}` ->
stdout `{"ev": "grown", "n": n, "link_s": [...]}`; stdin `{"cmd": "quit"}` closes
every browser and exits. Errors come back as `{"ev": "error", "message": ...}`.

    python -m wa_ray.bench.pw_fleet --sim http://127.0.0.1:PORT --chromium /usr/lib/chromium/chromium
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


def phone_of(i: int) -> str:
    return f"1555400{i:04d}"


async def main(sim: str, chromium: str | None) -> None:
    from playwright.async_api import async_playwright

    from wa_ray.simulator.wa_web.testing import link_page
    from wa_ray.runtime import CHROMIUM_BASE_FLAGS

    def emit(ev: str, **data: Any) -> None:
        sys.stdout.write(json.dumps({"ev": ev, **data}) + "\n")
        sys.stdout.flush()

    pw = await async_playwright().start()
    browsers: list[Any] = []
    emit("started")
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            target, slots = int(cmd["n"]), asyncio.Semaphore(int(cmd.get("concurrency", 4)))

            async def one(i: int) -> float:
                async with slots:
                    t0 = time.monotonic()
                    browser = await pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_BASE_FLAGS),
                                                       headless=True)
                    browsers.append(browser)
                    ctx = await browser.new_context()
                    await link_page(ctx, sim, phone_of(i), timeout=120_000)
                    took = round(time.monotonic() - t0, 2)
                    emit("linked", i=i, s=took)
                    return took

            try:
                link_s = await asyncio.gather(*(one(i) for i in range(len(browsers), target)))
                emit("grown", n=len(browsers), link_s=list(link_s))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                emit("error", message=f"{type(exc).__name__}: {exc}"[:500], n=len(browsers))
    finally:
        for browser in browsers:
            try:
                await browser.close()
            except Exception:  # noqa: BLE001
                pass
        await pw.stop()
        emit("stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sim", required=True)
    parser.add_argument("--chromium", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.sim.rstrip("/") + "/", args.chromium))
