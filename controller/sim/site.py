"""A simulated site behind a config: Modbus meters, PDUs and PLCs, MQTT pool agents, and the
physics that ties them together (what the site meter reads, what a PDU cut does to a pool).

Used by `curtaild demo`, the integration tests and the benchmarks. Every device listens on the
loopback port its config names; `site_config()` builds a config with free ports.

Device faults for the tests: `stop_device()` / `start_device()` take a device's Modbus server
off its port and put it back (devices sharing a port, as behind a gateway, go together),
`model(name).stall_s` makes one answer slowly, `meters[name].freeze()` one answer frozen values;
pool agent faults are on the agents themselves (`controller.sim.pool_agent`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping

from controller.config import Config, MqttConfig
from controller.drivers.kinds import pool_kind
from controller.sim.modbus_devices import SimMeter, SimPdu, SimPlc
from controller.sim.modbus_server import SimModbusSite, SimModel, SimServer
from controller.sim.pool_agent import SimPoolAgent, SimPoolFleet

PHYSICS_TICK_S = 0.05


class SimSite:
    """Owns every simulated device of a config; `await start()`, then `await stop()`."""

    def __init__(
        self,
        config: Config,
        *,
        mqtt: MqttConfig | None = None,
        gpu_kw: Mapping[str, float] | None = None,
        agent_delay_s: float = 0.1,
        stuck_pools: frozenset[str] = frozenset(),
        plc_delay_s: float = 0.1,
    ) -> None:
        self.config = config
        self.gpu_kw = dict(gpu_kw or {t.name: t.firm_kw * 0.9 for t in config.gpu_tenants})
        self.aux_kw = config.site.aux_kw
        self.modbus = SimModbusSite()  # one server per configured port (a gateway if shared)
        self.pdus: dict[str, SimPdu] = {}
        for p in config.pdus:
            self.pdus[p.name] = SimPdu(
                p.outlets,
                p.outlet_kw,
                unit_id=p.unit_id,
                first_coil=p.first_coil,
                first_power_register=p.first_power_register,
            )
        self.plcs: dict[str, SimPlc] = {
            p.name: SimPlc(p.max_kw, plc_delay_s, unit_id=p.unit_id or 1)
            for p in config.pools
            if pool_kind(p.driver).plc
        }
        self.meters: dict[str, SimMeter] = {}
        for m in config.meters:
            source = self._meter_source(m.name, m.role)
            self.meters[m.name] = SimMeter(unit_id=m.unit_id, power_source=source)
        self.agents = {
            p.name: SimPoolAgent(
                config.mqtt.topic_prefix,
                p.name,
                p.max_kw,
                agent_delay_s,
                ignore_commands=p.name in stuck_pools,
            )
            for p in config.pools
            if pool_kind(p.driver).reports_itself
        }
        self.fleet = (
            SimPoolFleet(mqtt or config.mqtt, self.agents.values()) if self.agents else None
        )
        self._tenant_of_meter = {m: t.name for t in config.gpu_tenants for m in t.meters}
        self._meters_of_tenant = {t.name: len(t.meters) for t in config.gpu_tenants}
        self._tasks: list[asyncio.Task[None]] = []
        self._port_of: dict[str, int] = {p.name: p.port for p in config.pdus}
        self._port_of.update({m.name: m.port for m in config.meters})
        self._port_of.update(
            {p.name: p.port for p in config.pools if pool_kind(p.driver).plc and p.port is not None}
        )
        self._servers: dict[int, SimServer] = {}

    # -- what the meters read ----------------------------------------------------------------

    def mining_kw(self) -> float:
        return sum(self.pool_power_kw().values())

    def site_kw(self) -> float:
        """What the site meter measures: GPU tenants + mining + aux."""
        return sum(self.gpu_kw.values()) + self.mining_kw() + self.aux_kw

    def pool_power_kw(self) -> dict[str, float]:
        power: dict[str, float] = {}
        for p in self.config.pools:
            kind = pool_kind(p.driver)
            if kind.reports_itself:
                power[p.name] = self.agents[p.name].power_kw
            elif kind.plc:
                power[p.name] = self.plcs[p.name].measured_kw() * self._energised(p.pdus)
            else:
                power[p.name] = sum(self.pdus[n].power_kw() for n in p.pdus)
        return power

    def _energised(self, pdus: list[str]) -> float:
        """Share of a pool's outlets that are on (1.0 without PDUs)."""
        outlets = [on for n in pdus for on in self.pdus[n].outlets_on]
        return 1.0 if not outlets else sum(outlets) / len(outlets)

    def _meter_source(self, name: str, role: str) -> Callable[[], float]:
        def read_kw() -> float:
            if role == "site":
                return self.site_kw()
            if role == "gpu":
                tenant = self._tenant_of_meter.get(name)
                return (
                    0.0 if tenant is None else self.gpu_kw[tenant] / self._meters_of_tenant[tenant]
                )
            return self.aux_kw

        return read_kw

    def set_frequency_hz(self, hz: float) -> None:
        """Grid frequency as every site meter reports it."""
        for m in self.config.meters:
            if m.role == "site":
                self.meters[m.name].set_frequency_hz(hz)

    def set_islanded(self, islanded: bool) -> None:
        for m in self.config.meters:
            if m.role == "site":
                self.meters[m.name].set_islanded(islanded)

    # -- lifecycle ---------------------------------------------------------------------------

    def model(self, device: str) -> SimModel:
        """The simulated PDU, meter or PLC of that name (set `stall_s` on it to slow it down)."""
        found = self.pdus.get(device) or self.meters.get(device) or self.plcs.get(device)
        if found is None:
            raise KeyError(f"no Modbus device named {device!r} in this site")
        return found

    async def start(self, down: Iterable[str] = ()) -> None:
        """Serve every device, except those named in `down` (start them with `start_device`)."""
        await self._start_servers(frozenset(down))
        if self.fleet is not None:
            self._tasks.append(asyncio.create_task(self.fleet.run(), name="sim-fleet"))
        self._tasks.append(asyncio.create_task(self._physics(), name="sim-physics"))

    async def _start_servers(self, down: frozenset[str]) -> None:
        by_port: dict[int, list[SimModel]] = {}
        for name, port in self._port_of.items():
            by_port.setdefault(port, []).append(self.model(name))
        for port, models in by_port.items():
            self._servers[port] = self.modbus.gateway(*models)
        for name in down:
            self.model(name)  # a typo must not pass for a device that is down
        up = {port for name, port in self._port_of.items() if name not in down}
        for port in up:
            await self._servers[port].start(port)

    async def stop_device(self, device: str) -> None:
        """Take the device's Modbus server off its port: connections drop, new ones are refused."""
        self.model(device)
        await self._servers[self._port_of[device]].stop()

    async def start_device(self, device: str) -> None:
        """Serve the device again on its configured port (a no-op when it is serving)."""
        self.model(device)
        port = self._port_of[device]
        await self._servers[port].start(port)

    async def stop(self) -> None:
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.fleet.close(), 3.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.modbus.stop()

    async def _physics(self) -> None:
        """PDU outlets decide what an agent's miners can draw; outlet registers show the load."""
        while True:
            for p in self.config.pools:
                if not p.pdus:
                    continue
                share = self._energised(p.pdus)
                kind = pool_kind(p.driver)
                if kind.reports_itself:
                    agent = self.agents[p.name]
                    agent.force_power_kw(None if share >= 1.0 else agent.max_kw * share)
                if not kind.switches_outlets:
                    self._spread_load(p.pdus, self.pool_power_kw()[p.name])
            await asyncio.sleep(PHYSICS_TICK_S)

    def _spread_load(self, pdus: list[str], pool_kw: float) -> None:
        outlets = [(n, i) for n in pdus for i in range(len(self.pdus[n].outlets_on))]
        on = [(n, i) for n, i in outlets if self.pdus[n].outlets_on[i]]
        per_outlet_w = 0.0 if not on else pool_kw * 1000.0 / len(on)
        for n, i in outlets:
            self.pdus[n].set_outlet_load_w(i, min(per_outlet_w, 65535.0))
