"""The idle step of `throughput-peak`: what linked sessions cost the machine when nobody sends anything.

Measured before the first rate step, after the links settled: the CPU of the service's own processes
(Ray core, actors, Serve, Chromium, its driver, Redis) over a quiet window. The bench process (it runs
the WhatsApp Web simulator, the outer edge) and the webhook receiver are not the service, and are left out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wa_ray.bench.machine import CpuAccount

IDLE_GOAL_CORES = 0.15  # issue #12: 50 linked idle sessions
NOT_SERVICE = frozenset({"bench-process", "bench-webhook-receiver"})


async def measure_idle(cpu: CpuAccount, seconds: float, sessions: int) -> dict[str, Any]:
    before = cpu.snapshot()
    await asyncio.sleep(seconds)
    diff = CpuAccount.diff(before, cpu.snapshot())
    by: dict[str, float] = diff["by_component_cores"]  # type: ignore[assignment]
    service = {k: v for k, v in by.items() if k not in NOT_SERVICE}
    return {
        "seconds": seconds,
        "sessions": sessions,
        "service_cores": round(sum(service.values()), 3),
        "goal_cores": IDLE_GOAL_CORES,
        "by_component_cores": service,
        "machine_busy_cores": diff["machine_busy_cores"],
        "others_busy_cores": diff["others_busy_cores"],
    }
