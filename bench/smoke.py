"""`python -m wa_ray.bench smoke --out DIR`: every bench at toy size on ONE service, for tests/bench.

Starting the service costs most of a small bench's time on a 2-core machine,
so the smoke run starts it once and runs, in order: crypto (1 MB), density
(wa-ray at 1 session), qr (2 sequential, a burst of 2), api (20 req/s for 2 s
on every target), recovery (every fault with 1 session, the whole-service
restart last), with soak before recovery (1 more session, 60 msg/min out and 30 in for 40 s, a sample every
10 s; the session is deleted afterwards); then, if node is installed, the Playwright and whatsapp-web.js
baselines at 1 session and one whatsapp-web.js QR. Each bench writes its usual
`<name>-latest.json/.md` into DIR.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.output import Envelope
from wa_ray.bench.report import to_jsonable


def run_smoke(out_dir: Path, console: Console, baselines: bool = True) -> dict[str, Envelope]:
    from wa_ray.bench import api, density, qr, recovery, soak
    from wa_ray.bench.crypto import CryptoConfig, run_crypto
    from wa_ray.bench.harness import Harness, HarnessOptions, Live
    from wa_ray.simulator.wa_web.testing import running_web_simulator

    envs: dict[str, Envelope] = {}
    envs["crypto"], _ = run_crypto(CryptoConfig(size_mb=1, runs=3, warmup=1, out_dir=out_dir), console)

    dcfg = density.DensityConfig(sizes=[1], out_dir=out_dir, settle_s=0.5, samples=1)
    qcfg = qr.QrConfig(sessions=2, burst=2, wwebjs_sessions=1 if baselines else 0, out_dir=out_dir)
    acfg = api.ApiConfig(rate=20, duration_s=2, warmup_s=0.5, out_dir=out_dir)
    rcfg = recovery.RecoveryConfig(sessions=1, service_sessions=0, timeout_s=90, out_dir=out_dir,
                                   faults=["actor", "browser", "host", "serve", "redis", "service"])
    # session s10, after the ones the other benches link; warm-up and p99 windows shrunk to fit 40 s
    scfg = soak.SoakConfig(sessions=1, rate_per_min=60, inbound_rate_per_min=30, duration_s=40, sample_s=10,
                           warmup_s=10, compare_s=15, drain_timeout_s=60, out_dir=out_dir, first_session=10)
    env_d, env_q, env_a, env_r = Envelope("density"), Envelope("qr"), Envelope("api"), Envelope("recovery")
    env_s = Envelope("soak")
    got: dict[str, Any] = {}
    harness = Harness(HarnessOptions(sessions=4, pacing=False))
    console.print("smoke: starting simulator, Redis, Ray, Serve, Chromium...")
    harness.start()
    bare = None
    try:
        machine = to_jsonable(harness.machine())
        bare, port = api.start_targets(acfg, harness)

        async def body() -> None:
            async with Live(harness, webhook=False) as live:
                got["density"] = await density.wa_ray_steps(dcfg, harness, live, console)
                got["qr"] = await qr.qr_wa_ray(qcfg, live, console)
                got["api"] = await api.api_phases(acfg, harness, live, console, port)
                got["soak"] = await _soak(soak, scfg, harness, console)
                got["recovery"] = await recovery.run_faults(rcfg, harness, live, console)

        asyncio.run(body())
    finally:
        if recovery._failed(got.get("recovery", {})):
            got.setdefault("recovery", {"faults": {}})["service_logs_kept"] = recovery.keep_logs(harness, "smoke")
        api.stop_bare(bare)
        cleanup = to_jsonable(harness.stop())
    methods: dict[str, Any] = {"wa-ray": got.get("density", {"steps": []})}
    fleets_cleanup: dict[str, Any] = {"wa-ray": cleanup}
    ww: dict[str, Any] = {}
    if baselines and shutil.which("node"):
        with running_web_simulator() as sim:
            for method in ("playwright", "wwebjs"):
                methods[method], fleets_cleanup[method] = density.run_fleet(method, dcfg, sim.url, console)
        ww, fleets_cleanup["wwebjs-qr"] = qr.run_wwebjs(qcfg, console)
    envs["density"], _ = density.finish(env_d, dcfg, methods, machine, fleets_cleanup)
    envs["qr"], _ = qr.finish(env_q, qcfg, got.get("qr", {}), ww, machine, {"wa-ray": cleanup})
    envs["api"], _ = api.finish(env_a, acfg, got.get("api", {}), machine, cleanup)
    envs["recovery"], _ = recovery.finish(env_r, rcfg, got.get("recovery", {"faults": {}}), machine, cleanup)
    envs["soak"], _ = soak.finish(env_s, scfg, got.get("soak", {"errors": ["did not run"]}), machine, cleanup)
    return envs


async def _soak(soak: Any, cfg: Any, harness: Any, console: Console) -> dict[str, Any]:
    """The soak on a Live of its own (message.received on its stream, webhooks on); its session is deleted after,
    so the faults that follow recover the sessions they linked and no more. A failure is its result, not the
    end of the smoke."""
    from wa_ray.bench.harness import WORKSPACE, session_id_of

    try:
        async with soak.soak_live(harness) as live:
            await soak.link(cfg, live, console)
            try:
                return dict(await soak.soak_phase(cfg, harness, live, console))
            finally:
                for i in range(cfg.first_session, cfg.first_session + cfg.sessions):
                    await live.api.delete(f"/v1/workspaces/{WORKSPACE}/sessions/{session_id_of(i)}")
    except Exception as exc:  # noqa: BLE001
        return {"errors": [f"{type(exc).__name__}: {exc}"[:500]]}
