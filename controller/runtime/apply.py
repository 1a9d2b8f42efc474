"""Apply is a diff (DESIGN point 5): only what changed since the last plan goes on the wire.

The Applier hands each pool driver its line of the plan when the pool's record changed
(identity), and lets every driver with something pending send it, all concurrently under a
bound. What a driver sent last, and its PDU outlets, are the driver's own; the Applier keeps
nothing per device. Protected PDUs are in no driver's outlets at all, and their drivers refuse
writes regardless (I1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from controller.clock import Clock
from controller.core.plan import Plan
from controller.core.state import NEVER, PoolState
from controller.drivers.pool import PoolCommand, PoolDriver

MAX_CONCURRENT_WRITES = 64


@dataclass(slots=True)
class ApplyReport:
    """What one apply put on the wire, for latency metrics and the audit trail."""

    clock: Clock | None = None
    commands: int = 0
    first_at: float | None = None  # monotonic
    last_at: float | None = None
    by_driver: dict[str, int] = field(default_factory=dict)
    # device errors per driver kind (the device's health records them)
    failures_by_driver: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)  # anything else: a bug, contained

    def sent(self, kind: str) -> None:
        at = self.clock.monotonic() if self.clock is not None else 0.0
        self.commands += 1
        self.by_driver[kind] = self.by_driver.get(kind, 0) + 1
        if self.first_at is None:
            self.first_at = at
        self.last_at = at

    def failed(self, kind: str) -> None:
        self.failures_by_driver[kind] = self.failures_by_driver.get(kind, 0) + 1

    @property
    def failures(self) -> int:
        return sum(self.failures_by_driver.values())


def command_of(ps: PoolState, at: float, epoch: int | None = None) -> PoolCommand:
    """A pool's line of the plan in the drivers' terms."""
    return PoolCommand(
        seq=ps.seq,
        target_kw=ps.target_kw,
        reason=ps.reason,
        outlets_on=ps.outlets_on,
        cut=ps.cut,
        commanded=ps.target_at != NEVER,
        at=at,
        epoch=epoch,
    )


class Applier:
    def __init__(self, pools: Mapping[str, PoolDriver], clock: Clock) -> None:
        self._pools = pools
        self._clock = clock
        self._seen: dict[str, PoolState] = {}
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
        # An active/standby pair's leader (docs/ha.md): the epoch to command under, asked
        # immediately before every send; None from it: fenced, nothing goes out. None: a
        # single daemon, never fenced.
        self.fence: Callable[[], int | None] | None = None

    def _epoch(self) -> tuple[bool, int | None]:
        """(may send, the epoch to stamp)."""
        if self.fence is None:
            return True, None
        epoch = self.fence()
        return epoch is not None, epoch

    def pool_kinds(self) -> dict[str, str]:
        """Pool -> its driver's kind name: a metric label, never a branch."""
        return {name: d.kind.name for name, d in self._pools.items()}

    async def apply(self, plan: Plan) -> ApplyReport:
        report = ApplyReport(self._clock)
        may_send, epoch = self._epoch()
        if not may_send:
            return report
        sends: list[Awaitable[None]] = []
        for name, ps in plan.pools.items():
            driver = self._pools[name]
            if self._seen.get(name) is not ps:
                self._seen[name] = ps
                driver.plan(command_of(ps, plan.at, epoch))
            if driver.pending:
                sends.append(self._send(driver, report))
        if sends:
            # One device's surprise must not cancel the others' writes (I10).
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
            report.errors += [o for o in outcomes if isinstance(o, BaseException)]
        return report

    async def _send(self, driver: PoolDriver, report: ApplyReport) -> None:
        async with self._limit:
            if not self._epoch()[0]:  # the deadline may pass while sends queue for a slot
                return
            await driver.send(report)

    def restore(self, pools: Mapping[str, PoolState]) -> None:
        """After a restart: what the store says each pool was sent last (PoolDriver.restore)."""
        for name, ps in pools.items():
            driver = self._pools.get(name)
            if driver is not None:
                driver.restore(ps.seq)

    def republish_commands(self, pools: Mapping[str, PoolState], at: float) -> None:
        """After a reconnect: every retained command again with the same seq (also before the
        first decision after a restart: the stored ones)."""
        may_send, epoch = self._epoch()
        if not may_send:
            return
        for name, ps in pools.items():
            driver = self._pools.get(name)
            if driver is not None:
                driver.republish(command_of(ps, at, epoch))
