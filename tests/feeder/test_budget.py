"""The request budget: never more than the limit in any window, and a Retry-After pause holds
every request (a simulated clock: the waits are what the budget asked for, not slept)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.feeder.budget import RequestBudget


class SimClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_window(times: list[float], window_s: float) -> int:
    # 1 us of slack: the clock is a float sum, and t - window_s may round below u
    return max(sum(1 for u in times if t - window_s + 1e-6 < u <= t) for t in times)


@settings(deadline=None, max_examples=300)
@given(limit=st.integers(1, 40), gaps=st.lists(st.floats(0, 5), min_size=1, max_size=150))
def test_no_window_holds_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = SimClock()
    budget = RequestBudget(limit, clock, clock.sleep)
    sent: list[float] = []

    async def run() -> None:
        for gap in gaps:
            clock.now += gap
            await budget.acquire()
            sent.append(clock.now)

    asyncio.run(run())
    assert _max_in_window(sent, 61.0) <= limit
    assert budget.used() <= limit


def test_tasks_sharing_the_budget_never_take_one_slot_twice() -> None:
    clock = SimClock()
    budget = RequestBudget(3, clock, clock.sleep)
    sent: list[float] = []

    async def worker() -> None:
        for _ in range(4):
            await budget.acquire()
            sent.append(clock.now)

    async def run() -> None:
        await asyncio.gather(worker(), worker(), worker())

    asyncio.run(run())
    assert len(sent) == 12 and _max_in_window(sent, 61.0) <= 3


def test_a_retry_after_pause_holds_the_next_request() -> None:
    clock = SimClock()
    budget = RequestBudget(30, clock, clock.sleep)
    asyncio.run(budget.acquire())
    budget.pause(7.0)
    budget.pause(2.0)  # a shorter pause does not shorten the first
    start = clock.now
    asyncio.run(budget.acquire())
    assert clock.now - start == 7.0
