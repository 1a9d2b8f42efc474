"""Apply is a diff (DESIGN point 5): only what changed since the last plan goes on the wire.

Pool commands are sent when a pool's `seq` moved; outlet vectors are recomputed only for pools
whose record changed (identity) and written only where they differ from the last vector sent.
All device writes of one plan run concurrently under a bound. Protected PDUs have no entry in
the outlet map at all, and their drivers refuse writes regardless (I1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from controller.adapters.modbus import DeviceError
from controller.clock import Clock
from controller.config import Config
from controller.core.plan import Plan
from controller.core.state import NEVER, PoolState
from controller.drivers.health import HealthBoard
from controller.drivers.modbus_pool import ModbusPoolDriver
from controller.drivers.pdu import PduDriver, ProtectedWriteRefused
from controller.runtime import payloads
from controller.runtime.topics import Topics

MAX_CONCURRENT_WRITES = 64

Publish = Callable[[str, bytes, int, bool], bool]


@dataclass(slots=True)
class ApplyReport:
    """What one apply put on the wire, for latency metrics and the audit trail."""

    commands: int = 0
    first_at: float | None = None  # monotonic
    last_at: float | None = None
    failures: int = 0  # device errors (the device's health records them)
    by_driver: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)  # anything else: a bug, contained

    def mark(self, at: float, driver: str) -> None:
        self.commands += 1
        self.by_driver[driver] = self.by_driver.get(driver, 0) + 1
        if self.first_at is None:
            self.first_at = at
        self.last_at = at


class Applier:
    def __init__(
        self,
        config: Config,
        publish: Publish,
        pdus: Mapping[str, PduDriver],
        plcs: Mapping[str, ModbusPoolDriver],
        health: HealthBoard,
        clock: Clock,
    ) -> None:
        self.topics = Topics.of(config)
        self._publish = publish
        self._pdus = {name: d for name, d in pdus.items() if not d.cfg.protected}
        self._plcs = plcs
        self._health = health
        self._clock = clock
        self._drivers = {p.name: p.driver for p in config.pools}
        self._pool_pdus = {p.name: [n for n in p.pdus if n in self._pdus] for p in config.pools}
        self._outlets_of = {name: d.cfg.outlets for name, d in self._pdus.items()}
        self._pool_of_pdu = {pdu: pool for pool, names in self._pool_pdus.items() for pdu in names}
        self._sent_seq: dict[str, int] = {}
        self._seen: dict[str, PoolState] = {}
        self._desired: dict[str, tuple[bool, ...]] = {}  # per PDU, from the plan
        self._written: dict[str, tuple[bool, ...]] = {}  # per PDU, last vector written
        self._restored: set[str] = set()  # pools whose last cmd the state store holds
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

    def applied_seq(self, pool: str) -> int:
        """The seq of the last command that reached a PLC or PDU pool's device."""
        return self._sent_seq.get(pool, 0)

    async def apply(self, plan: Plan) -> ApplyReport:
        report = ApplyReport()
        writes: list[Awaitable[None]] = []
        for name, ps in plan.pools.items():
            if self._seen.get(name) is not ps:
                self._seen[name] = ps
                self._plan_outlets(name, ps)
            if self._sent_seq.get(name) == ps.seq or ps.target_at == NEVER:
                continue  # unchanged, or never commanded by decide(): left as it is (I6)
            driver = self._drivers[name]
            if driver == "mqtt":
                if self._publish(
                    self.topics.pool_cmd(name), payloads.pool_cmd(ps, plan.at), 1, True
                ):
                    self._sent_seq[name] = ps.seq
                    report.mark(self._clock.monotonic(), "mqtt")
            elif driver == "modbus":
                writes.append(self._write_setpoint(name, ps, report))
            elif driver == "pdu" and not self._pool_pdus[name]:
                self._sent_seq[name] = ps.seq
        for pdu, states in self._desired.items():
            if self._written.get(pdu) != states:
                writes.append(self._write_outlets(pdu, states, plan, report))
        if writes:
            # One device's surprise must not cancel the others' writes (I10).
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            report.errors += [o for o in outcomes if isinstance(o, BaseException)]
        return report

    def restore(self, pools: Mapping[str, PoolState]) -> None:
        """After a restart: what the store says was last sent. A PLC or PDU pool reports this
        seq as applied, so its restored target confirms by telemetry; no command is re-sent."""
        self._sent_seq.update({name: ps.seq for name, ps in pools.items()})
        # Their last cmd is ours too: a broker that lost it (restarted without persistence)
        # gets it back, same seq and target, after any reconnect (CONTRACT 7).
        self._restored = set(pools)

    def republish_commands(self, pools: Mapping[str, PoolState], at: float) -> None:
        """After a reconnect: every MQTT pool's retained cmd again, with the same seq (also
        before the first decision after a restart: the stored ones)."""
        for name, ps in pools.items():
            if self._drivers.get(name) != "mqtt":
                continue
            if ps.target_at == NEVER and name not in self._restored:
                continue  # never commanded, by this life or the last: nothing of ours to repeat
            if self._publish(self.topics.pool_cmd(name), payloads.pool_cmd(ps, at), 1, True):
                self._sent_seq[name] = ps.seq

    def _plan_outlets(self, pool: str, ps: PoolState) -> None:
        names = self._pool_pdus.get(pool)
        if not names or (ps.target_at == NEVER and not ps.cut):
            return  # not commanded since start: its outlets are left as they are (I6)
        if self._sent_seq.get(pool) != ps.seq:
            # A new command: write what it asks for even where our last vector already did
            # (a re-command after drift, an outlet switched by hand); the driver writes only
            # the outlets that differ from what it last read.
            for pdu in names:
                self._written.pop(pdu, None)
        if ps.cut:
            on_count = 0
        elif ps.outlets_on is not None:
            on_count = ps.outlets_on
        elif self._drivers[pool] == "pdu":
            return  # an outlet pool decide() has not commanded yet: its outlets are unknown
        elif ps.target_kw > 0:
            on_count = sum(self._outlets_of[n] for n in names)
        else:
            return  # a setpoint pool at 0 kW: its outlets are left as they are
        for pdu in names:
            outlets = self._outlets_of[pdu]
            take = min(outlets, on_count)
            self._desired[pdu] = (True,) * take + (False,) * (outlets - take)
            on_count -= take

    async def _write_setpoint(self, name: str, ps: PoolState, report: ApplyReport) -> None:
        plc = self._plcs[name]
        async with self._limit:
            try:
                await self._health.device(name).run(lambda: plc.write_setpoint_kw(ps.target_kw))
            except DeviceError:
                report.failures += 1
                return
        self._sent_seq[name] = ps.seq
        report.mark(self._clock.monotonic(), "modbus")

    async def _write_outlets(
        self, pdu: str, states: tuple[bool, ...], plan: Plan, report: ApplyReport
    ) -> None:
        driver = self._pdus[pdu]
        async with self._limit:
            try:
                if None in driver.known_outlets:
                    # Learn the outlets before the first write: restoring outlets that are
                    # already on (the usual case after a start) then writes nothing.
                    await self._health.device(pdu).run(driver.read_outlets)
                writes = await self._health.device(pdu).run(lambda: driver.set_outlets(states))
            except (DeviceError, ProtectedWriteRefused):
                report.failures += 1
                return
        self._written[pdu] = states
        if writes:
            report.mark(self._clock.monotonic(), "pdu")
        pool = self._pool_of_pdu[pdu]
        if self._drivers[pool] == "pdu":
            # An outlet-switched pool has applied its command once all its PDUs match the plan.
            names = self._pool_pdus[pool]
            ps = plan.pools.get(pool)
            if ps is not None and all(self._written.get(n) == self._desired.get(n) for n in names):
                self._sent_seq[pool] = ps.seq
