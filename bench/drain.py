"""Wait until every item a bench sent has arrived, or a deadline passes: the end of a run's drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.1


async def until_arrived(items: Iterable[T], arrived: Callable[[T], bool], deadline: float) -> bool:
    """True once `arrived(item)` holds for every item (at once for none), False once `time.monotonic()` passes
    `deadline` before that. An item that has arrived is not asked again: arrival is final."""
    pending = list(items)
    while pending:
        pending = [item for item in pending if not arrived(item)]
        if not pending:
            break
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True
