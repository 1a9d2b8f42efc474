"""Driver registry: known kinds build drivers sharing endpoints; unknown and duplicates fail."""

from __future__ import annotations

import pytest

from controller.adapters.modbus import EndpointPool
from controller.drivers.meter import MeterDriver
from controller.drivers.modbus_pool import ModbusPoolDriver
from controller.drivers.pdu import PduDriver, ProtectedWriteRefused
from controller.drivers.registry import (
    DriverDeps,
    DriverFactory,
    DriverRegistry,
    DuplicateDriverKindError,
    UnknownDriverKindError,
    default_registry,
)
from controller.sim.modbus_devices import SimPdu
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import meter_cfg, pdu_cfg, plc_cfg


def test_default_kinds_and_errors() -> None:
    registry = default_registry()
    assert registry.kinds() == ("meter", "modbus", "pdu")
    with pytest.raises(UnknownDriverKindError, match="'mqtt'"):
        registry.get("mqtt")
    with pytest.raises(DuplicateDriverKindError):
        registry.register("pdu", registry.get("pdu"))

    def make_mqtt(cfg: object, deps: DriverDeps) -> object:
        return ("mqtt", cfg, deps.services["session"])

    registry.register("mqtt", make_mqtt)
    assert "mqtt" in registry
    deps = DriverDeps(EndpointPool(), services={"session": "s"})
    assert registry.get("mqtt")("cfg", deps) == ("mqtt", "cfg", "s")
    # Each call is a fresh registry: registrations never leak between tests or reloads.
    assert "mqtt" not in default_registry()


def test_generic_registry_rejects_empty_kind() -> None:
    registry: DriverRegistry[DriverFactory] = DriverRegistry()
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("", default_registry().get("pdu"))


async def test_factories_share_one_endpoint_per_gateway(site: SimModbusSite) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    endpoints = EndpointPool(timeout_s=0.3)
    refused: list[str] = []
    deps = DriverDeps(endpoints, on_protected_refused=refused.append)
    registry = default_registry()

    pdu = registry.get("pdu")(pdu_cfg(sim.port), deps)
    tenant_pdu = registry.get("pdu")(pdu_cfg(sim.port, protected=True), deps)
    meter = registry.get("meter")(meter_cfg(sim.port), deps)
    plc = registry.get("modbus")(plc_cfg(sim.port), deps)
    assert isinstance(pdu, PduDriver)
    assert isinstance(meter, MeterDriver)
    assert isinstance(plc, ModbusPoolDriver)
    assert len(endpoints) == 1

    assert isinstance(tenant_pdu, PduDriver)
    with pytest.raises(ProtectedWriteRefused):
        await tenant_pdu.set_outlets([False] * 8)
    assert refused == ["pdu-gpu-a1"]
    assert sim.coil_writes == [0] * 8
    endpoints.close()


def test_factory_checks_config_type() -> None:
    deps = DriverDeps(EndpointPool())
    with pytest.raises(TypeError, match="PduConfig"):
        default_registry().get("pdu")(meter_cfg(1502), deps)
    with pytest.raises(ValueError, match="host and port"):
        default_registry().get("modbus")(plc_cfg(1502).model_copy(update={"host": None}), deps)
