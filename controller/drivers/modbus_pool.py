"""Pool PLC driver (CONTRACT 3.3, driver = "modbus"): `PlcDriver` speaks the registers, and
`ModbusPool` is the pool driver role on top of it.

The setpoint is a float32 in two holding registers, written with ONE write-multiple-registers
request (CONTRACT 7): two single-register writes would let the PLC act on a torn value, half old
and half new. Measured and available power come back in one input-register read. The PLC's
available power caps the target, but that clamp is the core's decision, not this driver's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from controller.adapters.modbus import DeviceError, float32_to_registers, registers_to_float32s
from controller.clock import Clock
from controller.config import PoolConfig
from controller.drivers.deps import PoolDeps
from controller.drivers.outlets import OutletGroup
from controller.drivers.pool import PoolCommand, PoolDriver, SendLog
from controller.model import PoolTelemetry

POLL_S = 0.25


class PlcEndpoint(Protocol):
    async def read_input_registers(
        self, address: int, count: int, *, unit_id: int
    ) -> list[int]: ...

    async def write_registers(
        self, address: int, values: Sequence[int], *, unit_id: int
    ) -> None: ...


class PlcMeasurement(NamedTuple):
    power_kw: float
    available_kw: float


class PlcDriver:
    def __init__(self, cfg: PoolConfig, endpoint: PlcEndpoint) -> None:
        if cfg.driver != "modbus":
            raise ValueError(f"pool {cfg.name}: driver is {cfg.driver!r}, not 'modbus'")
        self.cfg = cfg
        self.name = cfg.name
        # Config checks require unit_id for modbus pools; 1 is the Modbus TCP convention.
        self._unit_id = cfg.unit_id if cfg.unit_id is not None else 1
        self._endpoint = endpoint
        self.last_written_kw: float | None = None

    async def write_setpoint_kw(self, kw: float) -> None:
        if not math.isfinite(kw) or kw < 0:
            raise ValueError(f"pool {self.name}: setpoint must be finite and >= 0, got {kw!r}")
        registers = float32_to_registers(kw)
        await self._endpoint.write_registers(
            self.cfg.setpoint_register, registers, unit_id=self._unit_id
        )
        self.last_written_kw = kw

    async def read_measured(self) -> PlcMeasurement:
        regs = await self._endpoint.read_input_registers(
            self.cfg.measured_register, 4, unit_id=self._unit_id
        )
        power_kw, available_kw = registers_to_float32s(regs)
        for what, value in (("power_kw", power_kw), ("available_kw", available_kw)):
            # CONTRACT 2.4 bounds agent reports the same way: >= 0 and at most 10x max_kw.
            if not math.isfinite(value) or value < 0 or value > 10 * self.cfg.max_kw:
                raise DeviceError(
                    f"pool {self.name}: {what} out of range: {value!r}", transient=True
                )
        return PlcMeasurement(power_kw=power_kw, available_kw=available_kw)


class ModbusPool(PoolDriver):
    """A PLC pool: the target is a setpoint write, the telemetry one input-register read. The
    PLC has no seq: its telemetry reports the seq of the last setpoint written to it."""

    poll_period_s = POLL_S

    def __init__(self, cfg: PoolConfig, outlets: OutletGroup, *, plc: PlcDriver, clock: Clock):
        super().__init__(cfg, outlets)
        self.plc = plc
        self._health = outlets.health(cfg.name)
        self._clock = clock

    async def send(self, log: SendLog) -> None:
        # The setpoint and a hard cut go out together: a PLC that times out must not hold the
        # cut back (I9). A device error is logged; anything else propagates.
        cmd = self._cmd
        writes = []
        if cmd is not None and cmd.commanded and self.sent_seq != cmd.seq:
            writes.append(self._send_command(cmd, log))
        if self.outlets.pending:
            writes.append(self.outlets.write(log))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _send_command(self, cmd: PoolCommand, log: SendLog) -> None:
        try:
            await self._health.run(lambda: self.plc.write_setpoint_kw(cmd.target_kw))
        except DeviceError:
            log.failed(self.kind.name)
            return
        self.sent_seq = cmd.seq
        log.sent(self.kind.name)

    async def read(self) -> PoolTelemetry:
        measured = await self._health.run(self.plc.read_measured)
        now = self._clock.time()
        return PoolTelemetry(
            measured.power_kw, measured.available_kw, True, self.sent_seq or 0, now
        )

    def devices(self) -> tuple[str, ...]:
        return (self.name,)

    def down(self) -> bool:
        return self._health.up is False


def make(cfg: PoolConfig, deps: PoolDeps) -> ModbusPool:
    if cfg.host is None or cfg.port is None:
        raise ValueError(f"pool {cfg.name}: driver 'modbus' needs host and port")
    plc = PlcDriver(cfg, deps.endpoints.get(cfg.host, cfg.port))
    return ModbusPool(cfg, deps.outlets(cfg), plc=plc, clock=deps.clock)
