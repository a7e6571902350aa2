"""What the soak runs inside an actor through Ray's `__ray_call__`: its pid and how many asyncio tasks it has.

Its own module, importing nothing but the standard library: cloudpickle sends an importable function by
reference, so each actor imports this module once; a module pulling in the bench (rich, httpx, the
harness) would grow the very processes whose memory the soak watches.

No actor needs a method of its own for this: `__ray_call__` runs a function on any Ray actor (ours, Serve's
controller, proxy and replicas). Where it runs (the actor's event loop thread or Ray's task thread) differs
between sync and async actors, so the count does not ask for a running loop: it reads asyncio's registry
of every task in the process, whichever loop or thread made it (Serve replicas run user code on a loop of
their own).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


def pending_tasks() -> int:
    """Tasks not yet done, over every event loop of this process."""
    registry = asyncio.tasks
    for _ in range(5):  # another thread may add a task while we copy: the copy is then retried
        try:
            found: set[Any] = set()
            for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):  # 3.11; 3.12 splits it in two
                found.update(getattr(registry, name, ()) or ())
            return sum(1 for t in found if not t.done())
        except RuntimeError:
            continue
    return -1


def pid_and_tasks(_actor: object) -> tuple[int, int]:
    return os.getpid(), pending_tasks()
