"""The request budget: at most `max_requests_per_min` requests in any 60 s, every request the
process makes counted (token requests and retries included), and one pause for all of them
when ERCOT answers 429 with Retry-After (its limit is per subscription key, not per call)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

# The client's window is a little longer than ERCOT's minute: a request is stamped here when it
# leaves, and arrives a few milliseconds later; counting over 61 s keeps the server's count of
# any 60 s at or under the limit even when network delay differs between two requests.
WINDOW_S = 61.0


class RequestBudget:
    def __init__(
        self,
        max_per_min: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        window_s: float = WINDOW_S,
    ) -> None:
        if max_per_min < 1:
            raise ValueError("max_per_min must be >= 1")
        self.max_per_min = max_per_min
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """No request leaves for `seconds` from now (a Retry-After); pauses only lengthen."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def wait_s(self) -> float:
        """How long the next request must wait; 0 when it may leave now."""
        now = self._clock()
        while (
            self._sent and self._sent[0] + self.window_s <= now
        ):  # as the wait below: no float gap
            self._sent.popleft()
        wait = self._paused_until - now
        if len(self._sent) >= self.max_per_min:
            wait = max(wait, self._sent[0] + self.window_s - now)
        return max(0.0, wait)

    async def acquire(self) -> None:
        """Wait for a slot and take it. No await between the check and the take, so tasks
        sharing the budget cannot both take the last slot."""
        while (wait := self.wait_s()) > 0:
            await self._sleep(wait)
        self._sent.append(self._clock())

    def give_back(self) -> None:
        """Return the slot just taken, unused. Only right after `acquire` returned, with no
        await in between: then the newest stamp is that slot."""
        if self._sent:
            self._sent.pop()

    def used(self) -> int:
        """Requests sent in the current window."""
        self.wait_s()
        return len(self._sent)
