"""Simulated Modbus devices: PDU, meter and pool PLC, served by `modbus_server`.

Each device is a `SimModel` whose `_blocks()` lays out its register map and whose `_access()`
renders reads from, and applies writes to, its Python state.

Register encoding here uses `struct`, not the client's converters, so tests compare the driver's
float32 layout against an independent one. Only the server side of pymodbus is imported.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator.simutils import SimUtils

from controller.sim.modbus_server import Blocks, Reply, SimModel, Vals

_READ_COILS, _READ_DI, _READ_HR, _READ_IR = 1, 2, 3, 4
_WRITE_COIL, _WRITE_REG, _WRITE_COILS, _WRITE_REGS = 5, 6, 15, 16


def float32_words(value: float) -> list[int]:
    """Big-endian float32, high word first (CONTRACT 3.2)."""
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def words_float32(words: Sequence[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


def _bits(count: int = 1) -> list[SimData]:
    return [SimData(0, values=[False] * count, datatype=DataType.BITS)]


def _regs(address: int, count: int) -> list[SimData]:
    return [SimData(address, count=count, values=0, datatype=DataType.REGISTERS)]


_NO_REGS = [SimData(0, datatype=DataType.INVALID)]


class SimPdu(SimModel):
    """Coils are outlets; input register i is outlet i's power in W, following its coil."""

    def __init__(
        self,
        outlets: int,
        outlet_kw: float,
        load_fraction: float = 0.9,
        *,
        unit_id: int = 1,
        first_coil: int = 0,
        first_power_register: int = 0,
        initially_on: bool = True,
    ) -> None:
        super().__init__(unit_id)
        self.first_coil = first_coil
        self.first_power_register = first_power_register
        self.outlets_on = [initially_on] * outlets
        self.load_w = [outlet_kw * 1000.0 * load_fraction] * outlets
        self.coil_writes = [0] * outlets  # per outlet: how many write requests touched it
        self.coil_write_requests: list[tuple[int, list[bool]]] = []  # (first outlet, values)

    def set_outlet(self, index: int, on: bool) -> None:
        self.outlets_on[index] = on  # from Python: not counted as a write

    def set_outlet_load_w(self, index: int, watts: float) -> None:
        self.load_w[index] = watts

    def outlet_power_w(self, index: int) -> int:
        if not self.outlets_on[index]:
            return 0
        return max(0, min(0xFFFF, round(self.load_w[index])))

    def power_kw(self) -> float:
        return sum(self.outlet_power_w(i) for i in range(len(self.outlets_on))) / 1000.0

    def _blocks(self) -> Blocks:
        n = len(self.outlets_on)
        coils = [SimData(self.first_coil, values=[False] * n, datatype=DataType.BITS)]
        return coils, _bits(), _NO_REGS, _regs(self.first_power_register, n)

    def _access(self, fc: int, start: int, addr: int, regs: list[int], values: Vals) -> Reply:
        n = len(self.outlets_on)
        if fc in (_WRITE_COIL, _WRITE_COILS) and values is not None:
            first = addr - self.first_coil
            if first < 0 or first + len(values) > n:
                return ExcCodes.ILLEGAL_ADDRESS
            bools = [bool(v) for v in values]
            self.coil_write_requests.append((first, bools))
            for i, on in enumerate(bools, start=first):
                self.outlets_on[i] = on
                self.coil_writes[i] += 1
        elif fc in (_READ_COILS, _WRITE_COIL):  # write-single-coil reads back its coil
            lead = self.first_coil - start * 16  # bit blocks start on a 16-bit register
            words = SimUtils.bitsToRegisters(_pad16([False] * lead + self.outlets_on))
            regs[: len(words)] = words
        elif fc == _READ_IR:
            base = self.first_power_register - start
            for i in range(n):
                regs[base + i] = self.outlet_power_w(i)
        elif fc != _READ_DI:
            return ExcCodes.ILLEGAL_FUNCTION
        return None


def _pad16(bits: list[bool]) -> list[bool]:
    return bits + [False] * (-len(bits) % 16)


class SimMeter(SimModel):
    """IR 0-1 power kW, IR 2-3 frequency Hz (float32), discrete input 0 islanded.

    `power_source`, when set, is called on every read (a site meter summing its loads).
    `freeze()` makes it answer the power it reads now, on every later read (a hung transducer
    behind a live Modbus interface), until `thaw()`."""

    def __init__(
        self,
        power_kw: float = 0.0,
        frequency_hz: float = 60.0,
        islanded: bool = False,
        *,
        unit_id: int = 1,
        power_source: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(unit_id)
        self._power_kw = power_kw
        self.frequency_hz = frequency_hz
        self.islanded = islanded
        self.power_source = power_source
        self.frozen_kw: float | None = None

    def freeze(self) -> None:
        self.frozen_kw = self.power_kw

    def thaw(self) -> None:
        self.frozen_kw = None

    def set_power_kw(self, kw: float) -> None:
        self._power_kw = kw

    def set_frequency_hz(self, hz: float) -> None:
        self.frequency_hz = hz

    def set_islanded(self, islanded: bool) -> None:
        self.islanded = islanded

    @property
    def power_kw(self) -> float:
        if self.frozen_kw is not None:
            return self.frozen_kw
        return self.power_source() if self.power_source is not None else self._power_kw

    def _blocks(self) -> Blocks:
        return _bits(), _bits(), _NO_REGS, _regs(0, 4)

    def _access(self, fc: int, start: int, addr: int, regs: list[int], values: Vals) -> Reply:
        if fc == _READ_IR:
            regs[0:4] = float32_words(self.power_kw) + float32_words(self.frequency_hz)
        elif fc == _READ_DI:
            regs[0] = int(self.islanded)  # bit 0 of the block's first register
        else:
            return ExcCodes.ILLEGAL_FUNCTION
        return None


class SimPlc(SimModel):
    """Pool PLC: HR 0-1 setpoint kW; IR 0-1 measured kW (follows the setpoint after
    `response_delay_s`, clamped to available), IR 2-3 available kW."""

    def __init__(
        self,
        max_kw: float,
        response_delay_s: float = 0.0,
        ignore_setpoint: bool = False,
        *,
        unit_id: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(unit_id)
        self.max_kw = max_kw
        self.available_kw = max_kw
        self.response_delay_s = response_delay_s
        self.ignore_setpoint = ignore_setpoint
        self._clock = clock
        self.setpoint_kw = max_kw
        self.setpoint_writes = 0
        self._previous_kw = max_kw
        self._changed_at = -math.inf

    def measured_kw(self) -> float:
        settled = self._clock() - self._changed_at >= self.response_delay_s
        kw = self.setpoint_kw if settled and not self.ignore_setpoint else self._previous_kw
        return max(0.0, min(kw, self.available_kw))

    def _blocks(self) -> Blocks:
        return _bits(), _bits(), _regs(0, 2), _regs(0, 4)

    def _access(self, fc: int, start: int, addr: int, regs: list[int], values: Vals) -> Reply:
        if fc == _WRITE_REGS and values is not None:
            # Only the whole float in one request: half a float is a torn setpoint.
            if addr != 0 or len(values) != 2:
                return ExcCodes.ILLEGAL_ADDRESS
            kw = words_float32(values)
            if not math.isfinite(kw) or kw < 0:
                return ExcCodes.ILLEGAL_VALUE
            if not self.ignore_setpoint:
                self._previous_kw = self.measured_kw()
            self.setpoint_kw = kw
            self._changed_at = self._clock()
            self.setpoint_writes += 1
        elif fc == _READ_HR:
            regs[0:2] = float32_words(self.setpoint_kw)
        elif fc == _READ_IR:
            regs[0:4] = float32_words(self.measured_kw()) + float32_words(self.available_kw)
        else:
            return ExcCodes.ILLEGAL_FUNCTION
        return None
