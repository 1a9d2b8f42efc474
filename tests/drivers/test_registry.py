"""Driver registry: known kinds build drivers sharing endpoints; unknown and duplicates fail."""

from __future__ import annotations

import sys
import types

import pytest

from controller.adapters.metrics import DRIVERS
from controller.adapters.modbus import EndpointPool
from controller.drivers import registry as registry_module
from controller.drivers.deps import PoolDeps, PoolFactory
from controller.drivers.kinds import POOL_KINDS, PoolKind, _table
from controller.drivers.meter import MeterDriver
from controller.drivers.modbus_pool import ModbusPool, PlcDriver
from controller.drivers.mqtt_pool import MqttPool
from controller.drivers.pdu import PduDriver, ProtectedWriteRefused
from controller.drivers.pdu_pool import PduPool
from controller.drivers.pool import PoolDriver
from controller.drivers.registry import (
    DriverDeps,
    DriverRegistry,
    DuplicateDriverKindError,
    UnknownDriverKindError,
    make_meter,
    make_pdu,
    pool_registry,
)
from controller.sim.modbus_devices import SimPdu
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import meter_cfg, pdu_cfg, plc_cfg, pool_deps


def test_pool_kinds_and_errors() -> None:
    registry = pool_registry()
    assert registry.kinds() == ("modbus", "mqtt", "pdu")
    assert set(registry.kinds()) == set(POOL_KINDS)  # every kind has traits and a factory
    with pytest.raises(UnknownDriverKindError, match="'pyasic'"):
        registry.get("pyasic")
    with pytest.raises(DuplicateDriverKindError):
        registry.register("pdu", registry.get("pdu"))

    def make_other(cfg: object, deps: PoolDeps) -> PoolDriver:
        raise NotImplementedError

    registry.register("other", make_other)
    assert "other" in registry
    # Each call is a fresh registry: registrations never leak between tests or reloads.
    assert "other" not in pool_registry()


def test_generic_registry_rejects_empty_kind() -> None:
    registry: DriverRegistry[PoolFactory] = DriverRegistry()
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("", pool_registry().get("pdu"))


async def test_factories_share_one_endpoint_per_gateway(site: SimModbusSite) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    endpoints = EndpointPool(timeout_s=0.3)
    refused: list[str] = []
    deps = DriverDeps(endpoints, on_protected_refused=refused.append)

    pdu = make_pdu(pdu_cfg(sim.port), deps)
    tenant_pdu = make_pdu(pdu_cfg(sim.port, protected=True), deps)
    meter = make_meter(meter_cfg(sim.port), deps)
    pools = pool_registry()
    plc_pool = pools.get("modbus")(plc_cfg(sim.port), pool_deps(endpoints, {pdu.name: pdu}))
    assert isinstance(pdu, PduDriver)
    assert isinstance(meter, MeterDriver)
    assert isinstance(plc_pool, ModbusPool)
    assert isinstance(plc_pool.plc, PlcDriver)
    assert len(endpoints) == 1

    assert isinstance(tenant_pdu, PduDriver)
    with pytest.raises(ProtectedWriteRefused):
        await tenant_pdu.set_outlets([False] * 8)
    assert refused == ["pdu-gpu-a1"]
    assert sim.coil_writes == [0] * 8
    endpoints.close()


def test_each_kind_builds_its_driver_and_a_modbus_pool_needs_an_address() -> None:
    endpoints = EndpointPool()
    pdu = make_pdu(pdu_cfg(1502), DriverDeps(endpoints))
    deps = pool_deps(endpoints, {pdu.name: pdu})
    registry = pool_registry()
    mqtt_cfg = plc_cfg(1502).model_copy(
        update={"driver": "mqtt", "host": None, "port": None, "unit_id": None}
    )
    outlet_cfg = mqtt_cfg.model_copy(update={"driver": "pdu", "pdus": [pdu.name]})
    assert isinstance(registry.get("mqtt")(mqtt_cfg, deps), MqttPool)
    outlet_pool = registry.get("pdu")(outlet_cfg, deps)
    assert isinstance(outlet_pool, PduPool)
    assert not outlet_pool.can_cut  # its outlets are its command: no separate cut path
    with pytest.raises(ValueError, match="host and port"):
        registry.get("modbus")(plc_cfg(1502).model_copy(update={"host": None}), deps)
    endpoints.close()


def test_the_metrics_label_set_names_every_pool_kind() -> None:
    assert set(POOL_KINDS) <= set(DRIVERS)


def test_a_new_kind_is_its_module_and_one_line_in_the_kinds_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def make(cfg: object, deps: PoolDeps) -> PoolDriver:
        raise NotImplementedError

    module = types.ModuleType("controller.drivers.fake_pool")
    module.make = make  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "controller.drivers.fake_pool", module)
    table = {**POOL_KINDS, "fake": PoolKind("fake", "fake_pool")}
    monkeypatch.setattr(registry_module, "POOL_KINDS", table)
    assert pool_registry().get("fake") is make

    # A line whose module has no factory is refused when the registry is built, naming both.
    monkeypatch.setitem(sys.modules, "controller.drivers.fake_pool", types.ModuleType("x"))
    with pytest.raises(UnknownDriverKindError, match=r"'fake'.*fake_pool\.py.*make"):
        pool_registry()


def test_the_kinds_table_refuses_a_kind_listed_twice() -> None:
    with pytest.raises(ValueError, match="listed twice: mqtt"):
        _table(PoolKind("mqtt", "mqtt_pool"), PoolKind("mqtt", "other_pool"))
