"""The PDU outlets a pool switches: a setpoint pool's hard-cut path, or an outlet pool itself.

Apply is a diff (DESIGN point 5): the wanted vector per PDU is kept, and a PDU is written only
while what was last written differs from it. Protected PDUs (CONTRACT I1) never enter a group:
the registry leaves them out, and their drivers refuse writes regardless.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from controller.adapters.modbus import DeviceError
from controller.drivers.health import DeviceHealth, HealthBoard
from controller.drivers.pdu import PduDriver, ProtectedWriteRefused

if TYPE_CHECKING:
    from controller.drivers.pool import SendLog

OUTLET_WRITES = "pdu"  # the commands metric's label for outlet writes, whatever the pool's kind


class OutletGroup:
    def __init__(self, pdus: Sequence[PduDriver], health: HealthBoard) -> None:
        self.pdus = [d for d in pdus if not d.cfg.protected]
        self._health = health
        self.count = sum(d.cfg.outlets for d in self.pdus)
        self._wanted: dict[str, tuple[bool, ...]] = {}
        self._written: dict[str, tuple[bool, ...]] = {}
        # PDUs whose wanted vector differs from what was last written, kept as they change:
        # `pending` is asked of every pool at every apply (each tick, and before the first
        # command of an event). Comparing ~1,000 PDUs' vectors there was 40% of the Applier's
        # samples at 1000/200 (bench_scale --profile).
        self._due: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.pdus)

    def health(self, device: str) -> DeviceHealth:
        return self._health.device(device)

    def want(self, on_count: int) -> None:
        """The first `on_count` outlets on, in PDU order, the rest off."""
        for pdu in self.pdus:
            outlets = pdu.cfg.outlets
            take = min(outlets, on_count)
            states = _vector(take, outlets)
            self._wanted[pdu.name] = states
            if self._written.get(pdu.name) == states:
                self._due.discard(pdu.name)
            else:
                self._due.add(pdu.name)
            on_count -= take

    def forget_written(self) -> None:
        self._written.clear()
        self._due = set(self._wanted)

    @property
    def pending(self) -> bool:
        return bool(self._due)

    @property
    def settled(self) -> bool:
        """Every PDU of the group shows what was last wanted (nothing wanted counts as done)."""
        return not self.pending

    def _mark_written(self, name: str, states: tuple[bool, ...]) -> None:
        self._written[name] = states
        if self._wanted.get(name) == states:
            self._due.discard(name)

    async def write(self, log: SendLog) -> None:
        writes = []
        for pdu in self.pdus:
            if pdu.name not in self._due:
                continue
            states = self._wanted[pdu.name]
            if pdu.shows(states):
                # Nothing to write (a setpoint pool re-commanded with its outlets on, the usual
                # case): no task, lock or health record. At 200 pools an ECRS made some 400
                # such no-op tasks, queued ahead of the real outlet writes (bench_scale).
                self._mark_written(pdu.name, states)
                continue
            writes.append(self._write(pdu, states, log))
        if not writes:
            return
        # One PDU's surprise must not cancel the others' writes (I10); the first is raised.
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _write(self, pdu: PduDriver, states: tuple[bool, ...], log: SendLog) -> None:
        health = self._health.device(pdu.name)
        try:
            if None in pdu.known_outlets:
                # Learn the outlets before the first write: restoring outlets that are already
                # on (the usual case after a start) then writes nothing.
                await health.run(pdu.read_outlets)
            writes = await health.run(lambda: pdu.set_outlets(states))
        except (DeviceError, ProtectedWriteRefused):
            log.failed(OUTLET_WRITES)
            return
        self._mark_written(pdu.name, states)
        if writes:
            log.sent(OUTLET_WRITES)


@functools.cache
def _vector(on: int, outlets: int) -> tuple[bool, ...]:
    """The first `on` of `outlets` on: one shared tuple per shape, not one per PDU and plan."""
    return (True,) * on + (False,) * (outlets - on)
