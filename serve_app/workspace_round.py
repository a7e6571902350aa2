"""One round of a per-workspace watcher: every workspace evaluated on its own, a bounded number at once.

The ProviderSelector's watcher (serve_app/provider_selector.py) runs one every second over each workspace
with a provider config; failover and its `provider.changed` wait on the round, so a round must not grow
with the number of workspaces times one evaluation's Redis round trips. What a round keeps:

* isolation: an evaluation that raises or outlasts its timeout never stops another's; its error is logged
  once (again only when it changes) and forgotten at the workspace's next successful evaluation;
* a bound: at most `bound` evaluations run at once;
* no overlap: `run` returns only once each of its evaluations has ended (a timed-out one is cancelled, not
  left running), so, rounds running one after another, no workspace is ever evaluated twice at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

log = logging.getLogger(__name__)

# Evaluations overlapping in a round. One is a few sequential Redis round trips and a decryption: waiting
# on Redis, not on the CPU, so overlapping them shortens a round about as many times, until the one event
# loop is busy. 32 hides the round trips; more adds nothing then but connections taken from the pool and a
# larger burst of commands each second beside the message hot path on the same Redis.
ROUND_CONCURRENCY = 32
# An evaluation takes milliseconds, and a rescue moves at most 200 stranded entries a queue each round, a
# few round trips each; one still running after this is stuck (a Redis node that does not answer holds a command up to the
# client's 30 s socket timeout), and the round goes on without it. Cancelled mid-rescue, it stops as a
# restart of the replica would: entries it had read stay in the rerouter's pending list, and its next
# rescue of that queue reads them first (ProviderSelector._move_queue).
EVALUATION_TIMEOUT_S = 10.0

Evaluate = Callable[[str], Awaitable[object]]


class WorkspaceRound:
    """Runs `evaluate(ws)` for each workspace of a round and remembers which ones failed."""

    def __init__(self, evaluate: Evaluate, what: str, *, bound: int = ROUND_CONCURRENCY,
                 timeout_s: float = EVALUATION_TIMEOUT_S) -> None:
        self._evaluate = evaluate
        self._what = what  # names the evaluation in the log ("provider evaluation")
        self._bound = bound
        self._timeout_s = timeout_s
        self._failing: dict[str, str] = {}  # workspace -> the error its last evaluation ended with

    @property
    def failing(self) -> Mapping[str, str]:
        """The workspaces whose last evaluation failed, with its error."""
        return self._failing

    async def run(self, workspaces: Iterable[str]) -> None:
        """Evaluate each workspace once; returns when every evaluation has ended. Never raises for one."""
        gate = asyncio.Semaphore(self._bound)
        await asyncio.gather(*(self._one(ws, gate) for ws in sorted(workspaces)))

    async def _one(self, ws: str, gate: asyncio.Semaphore) -> None:
        async with gate:  # the timeout starts once the evaluation may run, not while it waits for its turn
            deadline = asyncio.timeout(self._timeout_s)
            try:
                async with deadline:
                    await self._evaluate(ws)
            except Exception as exc:
                self._failed(ws, exc, timed_out=deadline.expired())
            else:
                self._failing.pop(ws, None)

    def _failed(self, ws: str, exc: Exception, timed_out: bool) -> None:
        if timed_out:
            error = f"timed out: still running after {self._timeout_s:g} s"
        else:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if self._failing.get(ws) != error:
            log.error("%s of workspace %s failed (%s)", self._what, ws, error, exc_info=exc)
        self._failing[ws] = error
