"""The drain at the end of a bench run (bench/drain.py): wait until every item arrived, or a deadline."""

from __future__ import annotations

import time

from wa_ray.bench.drain import until_arrived


async def test_nothing_to_wait_for_has_drained() -> None:
    assert await until_arrived([], lambda _: False, deadline=time.monotonic() - 1)


async def test_true_once_every_item_arrived_and_an_arrived_item_is_not_asked_again() -> None:
    asked: list[int] = []
    polls_until = {1: 1, 2: 3}  # item -> on which ask it has arrived

    def arrived(item: int) -> bool:
        asked.append(item)
        return asked.count(item) >= polls_until[item]

    assert await until_arrived([1, 2], arrived, deadline=time.monotonic() + 3600)
    assert asked == [1, 2, 2, 2]


async def test_false_once_the_deadline_passed_with_an_item_missing() -> None:
    assert not await until_arrived([1, 2], lambda item: item == 1, deadline=time.monotonic() - 1)
