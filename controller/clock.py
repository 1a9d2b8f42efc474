"""Time is injected (DESIGN point 9): long-lived objects take a Clock, tests pass a fake one."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock epoch seconds (UTC): what payloads and decide() use."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring durations; never jumps."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.perf_counter()


def iso(epoch_s: float | None) -> str | None:
    """ISO 8601 with offset (UTC), millisecond precision, as every payload carries it."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


class FakeClock:
    """A clock that moves only when told (tests, benchmarks, simulations).

    `time()` and `monotonic()` both read `now`; calling the clock reads it too, for the
    drivers and endpoints that take a plain `() -> float` monotonic clock.
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
