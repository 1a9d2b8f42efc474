"""Retry backoff: one policy for device health, Modbus reconnects and the MQTT session.

Pure arithmetic, no clock and no I/O, so drivers and adapters can both use it (DESIGN 7, 10).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# factor**n overflows a float long before any site gives up retrying.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delay after n consecutive failures: initial_s * factor**(n-1), at most max_s.

    `jitter` spreads each delay by up to that share downwards (0.25: 75-100% of it), so that
    clients which failed together do not retry in step; the default 0 keeps delays exact.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.factor < 1 or self.max_s < self.initial_s:
            raise ValueError("backoff needs initial_s >= 0, factor >= 1, max_s >= initial_s")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff jitter is a share of the delay, 0 to 1")

    def delay_s(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before the next try; 0 when nothing has failed yet."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, _MAX_EXPONENT)
        delay = min(self.max_s, self.initial_s * self.factor**exponent)
        if self.jitter:
            delay *= 1.0 - self.jitter * rand()
        return delay
