"""Meter driver (CONTRACT 3.2): power kW and frequency Hz as float32, islanded as a discrete input.

`read_all` is what the poll loop calls: both floats in one input-register request when they lie
within one request's reach (always so for the default profile, registers 0-3), plus one discrete
input request. They run one after the other: the shared endpoint serialises them on the wire
anyway, and sequential code reports the first failure as a plain DeviceError. The discrete
input goes first: the frequency that trips `ufr` pools (I11) is then acted on as soon as its
reply is in, not one more round trip later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol

from controller.adapters.modbus import DeviceError, registers_to_float32s
from controller.config import MeterConfig

# Modbus allows at most 125 registers in one read-input-registers request.
_MAX_REGISTERS_PER_READ: Final = 125


class MeterEndpoint(Protocol):
    async def read_input_registers(
        self, address: int, count: int, *, unit_id: int
    ) -> list[int]: ...

    async def read_discrete_inputs(
        self, address: int, count: int, *, unit_id: int
    ) -> list[bool]: ...


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One meter poll; the caller stamps it with the time it was taken."""

    power_kw: float
    frequency_hz: float
    islanded: bool


class MeterDriver:
    def __init__(self, cfg: MeterConfig, endpoint: MeterEndpoint) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._endpoint = endpoint
        first = min(cfg.power_register, cfg.frequency_register)
        last = max(cfg.power_register, cfg.frequency_register) + 1
        # None when the two floats are too far apart for one request (a non-default profile).
        self._span: tuple[int, int] | None = (
            (first, last - first + 1) if last - first + 1 <= _MAX_REGISTERS_PER_READ else None
        )

    async def read_power_kw(self) -> float:
        return await self._read_float(self.cfg.power_register, "power_kw")

    async def read_frequency_hz(self) -> float:
        return await self._read_float(self.cfg.frequency_register, "frequency_hz")

    async def read_islanded(self) -> bool:
        (bit,) = await self._endpoint.read_discrete_inputs(
            self.cfg.islanded_input, 1, unit_id=self.cfg.unit_id
        )
        return bit

    async def read_all(self) -> MeterSample:
        islanded = await self.read_islanded()
        power_kw, frequency_hz = await self._read_both_floats()
        return MeterSample(power_kw=power_kw, frequency_hz=frequency_hz, islanded=islanded)

    async def _read_both_floats(self) -> tuple[float, float]:
        if self._span is None:
            return (await self.read_power_kw(), await self.read_frequency_hz())
        first, count = self._span
        regs = await self._endpoint.read_input_registers(first, count, unit_id=self.cfg.unit_id)
        p = self.cfg.power_register - first
        f = self.cfg.frequency_register - first
        return (
            self._checked(registers_to_float32s(regs[p : p + 2])[0], "power_kw"),
            self._checked(registers_to_float32s(regs[f : f + 2])[0], "frequency_hz"),
        )

    async def _read_float(self, address: int, what: str) -> float:
        regs = await self._endpoint.read_input_registers(address, 2, unit_id=self.cfg.unit_id)
        return self._checked(registers_to_float32s(regs)[0], what)

    def _checked(self, value: float, what: str) -> float:
        # NaN or infinity from a meter is a device fault, never a number to decide on.
        if not math.isfinite(value):
            raise DeviceError(f"{self.name}: {what} is {value!r}", transient=True)
        return value
