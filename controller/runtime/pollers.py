"""Device polling: meters, PLC pools and outlet-switched pools feed the input slots.

A failed poll leaves the last reading in place; it ages past `meter_stale_s` and becomes
unknown in decide() (DESIGN point 3). Health records every outcome and logs transitions only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from controller.adapters.modbus import DeviceError
from controller.clock import Clock
from controller.config import Config, MeterConfig
from controller.drivers.health import HealthBoard
from controller.drivers.meter import MeterDriver
from controller.drivers.modbus_pool import ModbusPoolDriver
from controller.drivers.pdu import PduDriver
from controller.model import PoolTelemetry, Reading
from controller.runtime.apply import Applier
from controller.runtime.inputs import Inputs

# The site meter carries frequency: polled fast so an under-frequency trip (I11) acts within
# a fraction of a second. Other meters and devices follow slower load changes.
SITE_METER_POLL_S = 0.1
METER_POLL_S = 1.0
PLC_POLL_S = 0.25
PDU_POOL_POLL_S = 0.5
# Other PDUs (setpoint pools' hard-cut path, GPU tenants' protected ones) are only watched: their
# outlet states keep the driver's diff honest (a hand-switched outlet) and their health visible.
PDU_WATCH_S = 5.0


class Pollers:
    def __init__(
        self,
        config: Config,
        inputs: Inputs,
        applier: Applier,
        health: HealthBoard,
        clock: Clock,
        meters: Mapping[str, MeterDriver],
        plcs: Mapping[str, ModbusPoolDriver],
        pdus: Mapping[str, PduDriver],
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.applier = applier
        self.health = health
        self.clock = clock
        self.meters = meters
        self.plcs = plcs
        self.pool_pdus = {
            p.name: [pdus[n] for n in p.pdus] for p in config.pools if p.driver == "pdu"
        }
        switched = {d.name for drivers in self.pool_pdus.values() for d in drivers}
        self.watched = [d for name, d in pdus.items() if name not in switched]
        # A meter change larger than this wakes the loop at once instead of waiting a tick.
        self.wake_delta_kw = max(10.0, config.site.margin_kw / 4)

    def tasks(self) -> list[asyncio.Task[None]]:
        tasks = [
            asyncio.create_task(self._meter(m), name=f"poll-{m.name}") for m in self.config.meters
        ]
        tasks += [asyncio.create_task(self._plc(n), name=f"poll-{n}") for n in self.plcs]
        tasks += [asyncio.create_task(self._watch(d), name=f"watch-{d.name}") for d in self.watched]
        tasks += [
            asyncio.create_task(self._pdu_pool(n, d), name=f"poll-{n}")
            for n, d in self.pool_pdus.items()
        ]
        return tasks

    async def _meter(self, cfg: MeterConfig) -> None:
        driver = self.meters[cfg.name]
        health = self.health.device(cfg.name)
        site = cfg.role == "site"
        trip_hz = self.config.dispatch.frequency_trip_hz
        period_s = SITE_METER_POLL_S if site else METER_POLL_S
        while True:
            started = self.clock.monotonic()
            try:
                sample = await health.run(driver.read_all)
            except DeviceError:
                sample = None
            if sample is not None:
                now = self.clock.time()
                old = self.inputs.meters_kw.get(cfg.name)
                self.inputs.meters_kw[cfg.name] = Reading(sample.power_kw, now)
                wake = old is None or abs(old.value - sample.power_kw) > self.wake_delta_kw
                if site:
                    was = self.inputs.islanded
                    self.inputs.frequency_hz = Reading(sample.frequency_hz, now)
                    self.inputs.islanded = Reading(1.0 if sample.islanded else 0.0, now)
                    if sample.frequency_hz <= trip_hz:
                        self.inputs.notify("frequency")  # I11: no waiting for the tick
                    if was is None or (was.value >= 0.5) != sample.islanded:
                        wake = True
                if wake:
                    self.inputs.notify("meter")
            await _sleep_rest(period_s, started, self.clock)

    async def _plc(self, name: str) -> None:
        plc = self.plcs[name]
        health = self.health.device(name)
        while True:
            started = self.clock.monotonic()
            now = self.clock.time()
            try:
                measured = await health.run(plc.read_measured)
            except DeviceError:
                last = self.inputs.pools.get(name)
                if health.up is False and last is not None and last.online:
                    self.inputs.set_pool_telemetry(name, _offline(last, now))
                    self.inputs.notify("pool")
            else:
                seq = self.applier.applied_seq(name)
                telemetry = PoolTelemetry(measured.power_kw, measured.available_kw, True, seq, now)
                self._store(name, telemetry)
            await _sleep_rest(PLC_POLL_S, started, self.clock)

    async def _pdu_pool(self, name: str, drivers: Sequence[PduDriver]) -> None:
        while True:
            started = self.clock.monotonic()
            now = self.clock.time()
            try:
                total_kw = 0.0
                for driver in drivers:
                    total_kw += await self.health.device(driver.name).run(driver.read_power_kw)
            except DeviceError:
                last = self.inputs.pools.get(name)
                if last is not None and last.online:
                    self.inputs.set_pool_telemetry(name, _offline(last, now))
                    self.inputs.notify("pool")
            else:
                seq = self.applier.applied_seq(name)
                self._store(name, PoolTelemetry(total_kw, None, True, seq, now))
            await _sleep_rest(PDU_POOL_POLL_S, started, self.clock)

    async def _watch(self, driver: PduDriver) -> None:
        health = self.health.device(driver.name)
        while True:
            with contextlib.suppress(DeviceError):
                await health.run(driver.read_outlets)  # reads only: protected PDUs too
            await asyncio.sleep(PDU_WATCH_S)

    def _store(self, name: str, telemetry: PoolTelemetry) -> None:
        last = self.inputs.pools.get(name)
        self.inputs.set_pool_telemetry(name, telemetry)
        if (
            last is None
            or last.applied_seq != telemetry.applied_seq
            or not last.online
            or abs(last.power_kw - telemetry.power_kw) > 0.01 * max(1.0, last.power_kw)
        ):
            self.inputs.notify("pool")


def _offline(last: PoolTelemetry, now: float) -> PoolTelemetry:
    return PoolTelemetry(last.power_kw, last.available_kw, False, last.applied_seq, now)


async def _sleep_rest(period_s: float, started: float, clock: Clock) -> None:
    await asyncio.sleep(max(0.0, period_s - (clock.monotonic() - started)))
