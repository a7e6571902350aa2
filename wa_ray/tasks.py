"""Fire-and-forget tasks that are neither collected mid-flight nor fail silently.

The event loop keeps only weak references to tasks: a task nobody holds can be
garbage collected while it waits, and its work silently never finishes (a
grain's `ready` signal would vanish and its session stay `initializing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_RUNNING: set[asyncio.Task[Any]] = set()


def background(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    _RUNNING.add(task)
    task.add_done_callback(lambda t: _finished(t, what))
    return task


def _finished(task: asyncio.Task[Any], what: str) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())
