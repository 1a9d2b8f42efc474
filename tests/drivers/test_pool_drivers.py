"""The pool driver role against real pymodbus servers: each kind commands, reports the seq it
applied, and keeps its own diff (what it sent, which outlets it wrote)."""

from __future__ import annotations

import json

from controller.adapters.modbus import EndpointPool
from controller.clock import SystemClock
from controller.drivers.health import HealthBoard
from controller.drivers.modbus_pool import ModbusPool
from controller.drivers.mqtt_pool import MqttPool
from controller.drivers.outlets import OutletGroup
from controller.drivers.pdu import PduDriver
from controller.drivers.pdu_pool import PduPool
from controller.drivers.pool import PoolCommand, PoolDriver
from controller.drivers.registry import DriverDeps, make_pdu, pool_registry
from controller.sim.modbus_devices import SimPdu, SimPlc
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import RecordingSink, pdu_cfg, plc_cfg, pool_deps


class Log:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.failures = 0

    def sent(self, kind: str) -> None:
        self.kinds.append(kind)

    def failed(self, kind: str) -> None:
        self.failures += 1


def cmd(seq: int, target_kw: float, **kw: object) -> PoolCommand:
    fields: dict[str, object] = {
        "seq": seq, "target_kw": target_kw, "reason": "price", "outlets_on": None,
        "cut": False, "commanded": True, "at": 1_700_000_000.0,
    }  # fmt: skip
    fields.update(kw)
    return PoolCommand(**fields)  # type: ignore[arg-type]


def build(
    kind: str,
    port: int,
    endpoints: EndpointPool,
    sink: RecordingSink,
    sent: list[tuple[str, bytes]],
    *,
    with_pdu: bool = True,
) -> tuple[PoolDriver, PduDriver]:
    pdu = make_pdu(pdu_cfg(port, outlets=8), DriverDeps(endpoints))
    deps = pool_deps(endpoints, {pdu.name: pdu}, sink=sink, sent=sent, topic_prefix="site")
    cfg = plc_cfg(port, max_kw=28.0).model_copy(update={"pdus": [pdu.name] if with_pdu else []})
    if kind != "modbus":
        cfg = cfg.model_copy(update={"driver": kind, "host": None, "port": None, "unit_id": None})
    return pool_registry().get(kind)(cfg, deps), pdu


async def test_modbus_pool_writes_the_setpoint_and_reports_the_seq_it_wrote(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    plc = site.add(SimPlc(28.0))
    await site.start()
    pool, _ = build("modbus", plc.port, endpoints, RecordingSink(), [], with_pdu=False)
    assert isinstance(pool, ModbusPool)
    assert (await pool.read()).applied_seq == 0
    pool.plan(cmd(7, 12.5))
    assert pool.pending
    log = Log()
    await pool.send(log)
    assert plc.setpoint_kw == 12.5
    assert log.kinds == ["modbus"]
    assert not pool.pending  # the diff: the same command is not written again
    telemetry = await pool.read()
    assert (telemetry.applied_seq, telemetry.power_kw) == (7, 12.5)


async def test_a_cut_switches_the_setpoint_pools_outlets_off_and_a_raise_restores_them(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    sent: list[tuple[str, bytes]] = []
    pool, _ = build("mqtt", sim.port, endpoints, RecordingSink(), sent)
    assert pool.can_cut
    pool.plan(cmd(3, 0.0, cut=True))
    log = Log()
    await pool.send(log)
    assert sim.outlets_on == [False] * 8
    assert log.kinds == ["mqtt", "pdu"]
    pool.plan(cmd(4, 20.0))
    await pool.send(log)
    assert sim.outlets_on == [True] * 8
    assert [json.loads(p)["seq"] for _, p in sent] == [3, 4]


async def test_outlet_pool_has_applied_a_command_once_its_pdus_show_it(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    pool, _ = build("pdu", sim.port, endpoints, RecordingSink(), [])
    assert isinstance(pool, PduPool)
    pool.plan(cmd(5, 10.5, outlets_on=3))
    await pool.send(Log())
    assert sim.outlets_on == [True] * 3 + [False] * 5
    telemetry = await pool.read()
    assert telemetry.applied_seq == 5
    assert abs(telemetry.power_kw - 3 * 3.5 * 0.9) < 1e-6


async def test_outlet_pool_never_commanded_is_left_as_it_is(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    pool, _ = build("pdu", sim.port, endpoints, RecordingSink(), [])
    pool.plan(cmd(1, 28.0, commanded=False))  # seeded from telemetry at start (I6)
    assert not pool.pending
    assert sim.coil_write_requests == []


def test_mqtt_pool_reports_through_its_sink_and_repeats_only_commands_of_ours() -> None:
    endpoints = EndpointPool()
    sink, sent = RecordingSink(), list[tuple[str, bytes]]()
    pool, _ = build("mqtt", 1502, endpoints, sink, sent)
    assert isinstance(pool, MqttPool)
    topics = pool.topics()
    state = b'{"seq": 9, "power_kw": 4.0, "available_kw": 28.0}'
    topics["site/pools/c02/state"](state, 1_700_000_000.0)
    assert sink.telemetry["c02"].applied_seq == 9
    topics["site/pools/c02/cmd"](b'{"seq": 41, "target_kw": 0}', 1_700_000_000.0)
    assert sink.seq == {"c02": 41}
    pool.republish(cmd(2, 5.0, commanded=False))
    assert sent == []  # never commanded, by this life or the last: nothing of ours to repeat
    pool.restore(2)
    pool.republish(cmd(2, 5.0, commanded=False))
    assert [json.loads(p)["seq"] for _, p in sent] == [2]
    endpoints.close()


def test_outlet_group_leaves_protected_pdus_out() -> None:
    endpoints = EndpointPool()
    deps = DriverDeps(endpoints)
    tenant = make_pdu(pdu_cfg(1502, protected=True), deps)
    group = OutletGroup([tenant], HealthBoard(SystemClock().monotonic))
    assert not group
    group.want(0)
    assert not group.pending
    endpoints.close()


async def test_a_recommand_writes_outlets_only_where_the_pdu_differs(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    pool, pdu = build("mqtt", sim.port, endpoints, RecordingSink(), [])
    pool.plan(cmd(1, 20.0))
    await pool.send(Log())  # learns the outlets (all on): nothing to write
    assert sim.coil_write_requests == []
    requests = len(sim.requests)
    pool.plan(cmd(2, 10.0))  # re-commanded, outlets still wanted on and known on
    await pool.send(Log())
    assert len(sim.requests) == requests  # not even a read: nothing went to the PDU
    assert not pool.pending
    sim.set_outlet(5, False)  # switched off by hand ...
    await pdu.read_outlets()  # ... and seen by the watcher
    pool.plan(cmd(3, 20.0))
    await pool.send(Log())
    assert sim.coil_write_requests == [(5, [True])]  # the next command restores it
    assert sim.outlets_on == [True] * 8
