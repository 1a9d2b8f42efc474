"""Device polling: meters and every polled pool driver feed the input slots.

A failed poll leaves the last reading in place; it ages past `meter_stale_s` and becomes
unknown in decide() (DESIGN point 3). Health records every outcome and logs transitions only.
A pool whose device is down is reported offline at its last load (at its max_kw when it was
never read): decide() holds it and counts that load (CONTRACT 7). Anything else a poll raises
is contained and counted; the poller goes on (I10).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from controller.adapters.modbus import DeviceError
from controller.clock import Clock
from controller.config import Config, MeterConfig
from controller.drivers.health import HealthBoard
from controller.drivers.meter import MeterDriver
from controller.drivers.pdu import PduDriver
from controller.drivers.pool import PoolDriver
from controller.model import PoolTelemetry, Reading
from controller.runtime.inputs import Inputs

# The site meter carries frequency: polled fast so an under-frequency trip (I11) acts within
# a fraction of a second. Other meters and devices follow slower load changes; each polled
# pool driver says its own period.
SITE_METER_POLL_S = 0.1
METER_POLL_S = 1.0
# Other PDUs (setpoint pools' hard-cut path, GPU tenants' protected ones) are only watched: their
# outlet states keep the driver's diff honest (a hand-switched outlet) and their health visible.
PDU_WATCH_S = 5.0


class Pollers:
    def __init__(
        self,
        config: Config,
        inputs: Inputs,
        health: HealthBoard,
        clock: Clock,
        meters: Mapping[str, MeterDriver],
        pools: Mapping[str, PoolDriver],
        pdus: Mapping[str, PduDriver],
        on_error: Callable[[str], None] = lambda _where: None,
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.health = health
        self.clock = clock
        self.meters = meters
        self.polled = [d for d in pools.values() if d.poll_period_s is not None]
        read_by_pools = {name for d in self.polled for name in d.devices()}
        self.watched = [d for name, d in pdus.items() if name not in read_by_pools]
        self.on_error = on_error  # called inside `except`: it logs the traceback and counts it

    def prepare(self, config: Config) -> Callable[[], None]:
        """A reload (same devices): the trip threshold and the wake threshold follow it."""

        def commit() -> None:
            self.config = config

        return commit

    @property
    def wake_delta_kw(self) -> float:
        # A meter change larger than this wakes the loop at once instead of waiting a tick.
        return max(10.0, self.config.site.margin_kw / 4)

    def tasks(self) -> list[asyncio.Task[None]]:
        tasks = [
            asyncio.create_task(self._meter(m), name=f"poll-{m.name}") for m in self.config.meters
        ]
        tasks += [asyncio.create_task(self._pool(d), name=f"poll-{d.name}") for d in self.polled]
        tasks += [asyncio.create_task(self._watch(d), name=f"watch-{d.name}") for d in self.watched]
        return tasks

    async def _meter(self, cfg: MeterConfig) -> None:
        driver = self.meters[cfg.name]
        health = self.health.device(cfg.name)
        site = cfg.role == "site"
        period_s = SITE_METER_POLL_S if site else METER_POLL_S
        while True:
            started = self.clock.monotonic()
            try:
                sample = await health.run(driver.read_all)
            except DeviceError:
                sample = None
            except Exception:  # noqa: BLE001 - a poller must outlive any surprise (I10)
                self.on_error("poll")
                sample = None
            if sample is not None:
                now = self.clock.time()
                old = self.inputs.set_meter(cfg.name, Reading(sample.power_kw, now))
                wake = old is None or abs(old.value - sample.power_kw) > self.wake_delta_kw
                if site:
                    was = self.inputs.islanded
                    self.inputs.set_site_signals(
                        Reading(sample.frequency_hz, now),
                        Reading(1.0 if sample.islanded else 0.0, now),
                    )
                    if sample.frequency_hz <= self.config.dispatch.frequency_trip_hz:
                        self.inputs.notify("frequency")  # I11: no waiting for the tick
                    if was is None or (was.value >= 0.5) != sample.islanded:
                        wake = True
                if wake:
                    self.inputs.notify("meter")
            await _sleep_rest(period_s, started, self.clock)

    async def _pool(self, driver: PoolDriver) -> None:
        period_s = driver.poll_period_s or METER_POLL_S
        while True:
            started = self.clock.monotonic()
            try:
                self._store(driver.name, await driver.read())
            except DeviceError:
                self._mark_offline(driver)
            except Exception:  # noqa: BLE001 - a poller must outlive any surprise (I10)
                self.on_error("poll")
            await _sleep_rest(period_s, started, self.clock)

    def _mark_offline(self, driver: PoolDriver) -> None:
        name = driver.name
        last = self.inputs.pools.get(name)
        if not driver.down() or (last is not None and not last.online):
            return  # one failed read is not an outage: health decides when the device is down
        now = self.clock.time()
        if last is None:  # never read: its load is unknown, so it counts at max_kw
            last = PoolTelemetry(driver.max_kw, None, True, driver.sent_seq or 0, now)
        self.inputs.pool_telemetry(name, _offline(last, now))

    async def _watch(self, driver: PduDriver) -> None:
        health = self.health.device(driver.name)
        while True:
            try:
                await health.run(driver.read_outlets)  # reads only: protected PDUs too
            except DeviceError:
                pass
            except Exception:  # noqa: BLE001 - a poller must outlive any surprise (I10)
                self.on_error("poll")
            await asyncio.sleep(PDU_WATCH_S)

    def _store(self, name: str, telemetry: PoolTelemetry) -> None:
        self.inputs.pool_telemetry(name, telemetry)  # wakes the loop only when it is news


def _offline(last: PoolTelemetry, now: float) -> PoolTelemetry:
    return PoolTelemetry(last.power_kw, last.available_kw, False, last.applied_seq, now)


async def _sleep_rest(period_s: float, started: float, clock: Clock) -> None:
    await asyncio.sleep(max(0.0, period_s - (clock.monotonic() - started)))
