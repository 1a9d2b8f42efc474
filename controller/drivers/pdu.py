"""PDU driver (CONTRACT 3.1): coil i switches outlet i, input register i is its power in W.

Writes are a diff against the last commanded or observed state, one write_coils request per run
of adjacent changed outlets (DESIGN 5). A protected PDU (a GPU tenant's, CONTRACT I1) is refused
inside this driver before anything reaches the wire; see `_write_coils`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from controller.adapters.modbus import DeviceError
from controller.config import PduConfig


class ProtectedWriteRefused(Exception):  # noqa: N818 - the name states the outcome, as in I1
    """A write was aimed at a protected PDU and refused; nothing was sent."""

    def __init__(self, pdu: str) -> None:
        super().__init__(f"{pdu}: protected PDU (GPU tenant), writes are refused")
        self.pdu = pdu


class PduEndpoint(Protocol):
    """What the driver needs of a Modbus endpoint (ModbusEndpoint satisfies it)."""

    async def read_coils(self, address: int, count: int, *, unit_id: int) -> list[bool]: ...

    async def read_input_registers(
        self, address: int, count: int, *, unit_id: int
    ) -> list[int]: ...

    async def write_coils(self, address: int, values: Sequence[bool], *, unit_id: int) -> None: ...


def changed_runs(known: Sequence[bool | None], desired: Sequence[bool]) -> list[tuple[int, int]]:
    """(first, stop) index ranges of adjacent outlets whose desired state differs from known.

    Unknown (None) always differs: after a failed write we cannot tell what the PDU did.
    """
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, want in enumerate(desired):
        if known[i] is not want:
            if start is None:
                start = i
        elif start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(desired)))
    return runs


class PduDriver:
    """One PDU. Not safe to share across event loops; safe for concurrent tasks in one loop."""

    def __init__(
        self,
        cfg: PduConfig,
        endpoint: PduEndpoint,
        on_protected_refused: Callable[[str], None],
    ) -> None:
        self.cfg = cfg  # frozen pydantic model: `protected` cannot be flipped after the check
        self.name = cfg.name
        # A protected PDU's driver never even holds a handle that can write.
        self._endpoint: PduEndpoint = (
            _ReadOnlyEndpoint(cfg.name, endpoint) if cfg.protected else endpoint
        )
        self._on_protected_refused = on_protected_refused
        self._known: list[bool | None] = [None] * cfg.outlets
        self._lock = asyncio.Lock()
        self.write_requests_total = 0

    @property
    def known_outlets(self) -> tuple[bool | None, ...]:
        """Last commanded or observed state per outlet; None when unknown."""
        return tuple(self._known)

    def shows(self, states: Sequence[bool]) -> bool:
        """Every outlet is known to be as `states` asks, and no request is in flight that could
        change what is known: `set_outlets(states)` would write nothing."""
        return not self._lock.locked() and self._known == list(states)

    def forget_outlets(self) -> None:
        """Make every outlet unknown, so the next set_outlets writes them all."""
        self._known = [None] * self.cfg.outlets

    async def read_outlets(self) -> list[bool]:
        async with self._lock:
            states = await self._endpoint.read_coils(
                self.cfg.first_coil, self.cfg.outlets, unit_id=self.cfg.unit_id
            )
            self._known = list[bool | None](states)
            return states

    async def read_outlet_power_w(self) -> list[float]:
        registers = await self._endpoint.read_input_registers(
            self.cfg.first_power_register, self.cfg.outlets, unit_id=self.cfg.unit_id
        )
        return [float(w) for w in registers]

    async def read_power_kw(self) -> float:
        """Sum of outlet power: the measured load of a `driver = "pdu"` pool."""
        return sum(await self.read_outlet_power_w()) / 1000.0

    async def set_outlets(self, states: Sequence[bool]) -> int:
        """Bring outlets to `states`, writing only changed ones; returns the requests sent.

        On a protected PDU every call is refused, even one that would change nothing: it is
        still an attempt to command a tenant's outlets, and I1 counts those.
        """
        if self.cfg.protected:
            self._refuse()
        if len(states) != self.cfg.outlets:
            raise ValueError(f"{self.name}: {len(states)} states for {self.cfg.outlets} outlets")
        desired = [bool(s) for s in states]
        async with self._lock:
            runs = changed_runs(self._known, desired)
            for first, stop in runs:
                await self._write_coils(first, desired[first:stop])
            return len(runs)

    async def _write_coils(self, first_outlet: int, values: list[bool]) -> None:
        """The one place this driver writes. The protected check lives here so that no path,
        present or future, can reach the wire without passing it."""
        if self.cfg.protected:
            self._refuse()
        stop = first_outlet + len(values)
        if first_outlet < 0 or stop > self.cfg.outlets or not values:
            raise ValueError(f"{self.name}: outlets {first_outlet}..{stop - 1} out of range")
        self.write_requests_total += 1
        try:
            await self._endpoint.write_coils(
                self.cfg.first_coil + first_outlet, values, unit_id=self.cfg.unit_id
            )
        except DeviceError:
            # The request may or may not have been applied: unknown, so it is written again.
            self._known[first_outlet:stop] = [None] * len(values)
            raise
        self._known[first_outlet:stop] = list[bool | None](values)

    def _refuse(self) -> None:
        try:
            self._on_protected_refused(self.name)
        finally:
            # Refuse even when the counting callback itself fails.
            raise ProtectedWriteRefused(self.name)


class _ReadOnlyEndpoint:
    """What a protected PDU's driver holds instead of the endpoint: reads pass, writes cannot."""

    def __init__(self, pdu: str, endpoint: PduEndpoint) -> None:
        self._pdu = pdu
        self._inner = endpoint

    async def read_coils(self, address: int, count: int, *, unit_id: int) -> list[bool]:
        return await self._inner.read_coils(address, count, unit_id=unit_id)

    async def read_input_registers(self, address: int, count: int, *, unit_id: int) -> list[int]:
        return await self._inner.read_input_registers(address, count, unit_id=unit_id)

    async def write_coils(self, address: int, values: Sequence[bool], *, unit_id: int) -> None:
        raise ProtectedWriteRefused(self._pdu)
