"""Instruments for the fault-injection tests: what a device, systemd or a scraper sees.

`NotifyListener` stands in for systemd's NOTIFY_SOCKET, `Sampler` watches a simulated quantity
every few milliseconds (peaks a broker message would miss), `MetricsView` reads a Prometheus
exposition, `expect` names what did not happen when a wait times out. Nothing here knows the
daemon's internals.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


def at_most(cap_kw: float) -> float:
    """The most mining may measure under a cap: the cap plus the 2% confirmation tolerance
    (CONTRACT 2.4), and 1 kW of rounding."""
    return cap_kw * 1.02 + 1.0


# -- sd_notify ---------------------------------------------------------------------------------


class NotifyListener:
    """A unix datagram socket passed to the daemon as NOTIFY_SOCKET; records every notification
    (READY=1, RELOADING=1, WATCHDOG=1, ...) with its arrival time (time.monotonic())."""

    def __init__(self) -> None:
        # sun_path holds 108 bytes: pytest's tmp_path can be longer, so a short dir of our own.
        self.dir = Path(tempfile.mkdtemp(prefix="cn-"))
        self.path = self.dir / "notify.sock"
        self.messages: list[tuple[float, str]] = []
        self._sock: socket.socket | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> NotifyListener:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").splitlines():
                self.messages.append((now, line))
            self._arrived.set()

    def mark(self) -> int:
        return len(self.messages)

    def times(self, line: str, since: int = 0) -> list[float]:
        """Arrival times of every notification line equal to `line` ("READY=1")."""
        return [at for at, text in self.messages[since:] if text == line]

    async def wait_for(self, line: str, timeout_s: float = 10.0, since: int = 0) -> float:
        """Arrival time of the first `line` from index `since` on, waiting for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.times(line, since)
            if found:
                return found[0]
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                seen = [text for _, text in self.messages[since:]][-10:]
                raise AssertionError(f"no {line} on NOTIFY_SOCKET in {timeout_s:g} s; got {seen}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left_s)
            except TimeoutError:
                continue


# -- sampling the simulated site ---------------------------------------------------------------


@dataclass
class Sampler:
    """Reads `read()` every `interval_s` inside `async with`; samples are (monotonic, value)."""

    read: Callable[[], float]
    interval_s: float = 0.005
    samples: list[tuple[float, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self.samples.append((time.monotonic(), self.read()))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.samples.append((time.monotonic(), self.read()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.samples.append((time.monotonic(), self.read()))

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, float]:
        """(time, value) of the largest sample taken in [start, end]."""
        window = [s for s in self.samples if start <= s[0] <= end]
        assert window, "no samples in that window"
        return max(window, key=lambda s: s[1])

    def longest_above(self, limit: float) -> float:
        """The longest stretch of time (s) the samples stayed above `limit`."""
        longest = 0.0
        began: float | None = None
        for at, value in self.samples:
            if value > limit and began is None:
                began = at
            elif value <= limit and began is not None:
                longest = max(longest, at - began)
                began = None
        if began is not None:
            longest = max(longest, self.samples[-1][0] - began)
        return longest


# -- Prometheus exposition ---------------------------------------------------------------------

_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class MetricsView:
    """One scrape: `value(name, **labels)` sums every series of `name` carrying those labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.series: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            match = _SERIES.match(line)
            if line.startswith("#") or match is None:
                continue
            labels = dict(_LABEL.findall(match.group(3) or ""))
            self.series.append((match.group(1), labels, float(match.group(4))))

    def value(self, name: str, **labels: str) -> float:
        found = [v for n, ls, v in self.series if n == name and labels.items() <= ls.items()]
        if not found:
            raise AssertionError(f"{name}{labels or ''} is not in the exposition")
        return sum(found)

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        try:
            return self.value(name, **labels)
        except AssertionError:
            return default


async def expect(waiting: Awaitable[T], failure: str) -> T:
    """Await a probe's wait; when it times out, fail with `failure` (what did not happen)
    first, the probe's own report of the last messages after it."""
    try:
        return await waiting
    except AssertionError as exc:
        raise AssertionError(f"{failure}\n  ({str(exc)[:300]})") from None
