"""PlcDriver against a simulated PLC (CONTRACT 3.3, 7 Drivers)."""

from __future__ import annotations

import struct

import pytest

from controller.adapters.modbus import DeviceError, EndpointPool
from controller.clock import FakeClock
from controller.drivers.modbus_pool import PlcDriver, PlcMeasurement
from controller.sim.modbus_devices import SimPlc
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import plc_cfg


async def test_setpoint_is_one_request_high_word_first(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPlc(3000.0))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    await driver.write_setpoint_kw(1234.5)
    assert [(r.function_code, r.address, r.count) for r in sim.requests] == [(16, 0, 2)]
    assert sim.setpoint_kw == 1234.5
    assert sim.setpoint_writes == 1
    # The raw holding registers, read back on the wire, are the big-endian bytes in order.
    raw = await endpoints.get("127.0.0.1", sim.port).read_holding_registers(0, 2, unit_id=1)
    assert struct.pack(">HH", *raw) == struct.pack(">f", 1234.5)
    assert raw == [0x449A, 0x5000]


async def test_measured_follows_setpoint_after_delay(
    site: SimModbusSite, endpoints: EndpointPool, clock: FakeClock
) -> None:
    sim = site.add(SimPlc(3000.0, response_delay_s=2.0, clock=clock))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    assert await driver.read_measured() == PlcMeasurement(3000.0, 3000.0)
    await driver.write_setpoint_kw(500.0)
    clock.advance(1.0)
    assert (await driver.read_measured()).power_kw == 3000.0
    clock.advance(1.5)
    assert await driver.read_measured() == PlcMeasurement(500.0, 3000.0)
    assert driver.last_written_kw == 500.0


async def test_measured_is_clamped_to_available(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPlc(3000.0))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    sim.available_kw = 2200.0
    await driver.write_setpoint_kw(2800.0)
    assert await driver.read_measured() == PlcMeasurement(2200.0, 2200.0)


async def test_plc_ignoring_setpoint_keeps_its_load(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPlc(3000.0, ignore_setpoint=True))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    await driver.write_setpoint_kw(0.0)
    assert sim.setpoint_kw == 0.0  # acknowledged ...
    assert (await driver.read_measured()).power_kw == 3000.0  # ... but not obeyed


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
async def test_bad_setpoint_never_reaches_the_wire(
    site: SimModbusSite, endpoints: EndpointPool, bad: float
) -> None:
    sim = site.add(SimPlc(3000.0))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    with pytest.raises(ValueError, match="setpoint"):
        await driver.write_setpoint_kw(bad)
    assert sim.requests == []


async def test_implausible_measurement_is_a_device_error(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPlc(3000.0))
    await site.start()
    driver = PlcDriver(plc_cfg(sim.port, max_kw=100.0), endpoints.get("127.0.0.1", sim.port))
    with pytest.raises(DeviceError, match="out of range"):
        await driver.read_measured()


def test_refuses_other_pool_kinds() -> None:
    cfg = plc_cfg(1502).model_copy(update={"driver": "mqtt"})
    with pytest.raises(ValueError, match="not 'modbus'"):
        PlcDriver(cfg, endpoint=_NoEndpoint())


class _NoEndpoint:
    async def read_input_registers(self, address: int, count: int, *, unit_id: int) -> list[int]:
        raise AssertionError

    async def write_registers(self, address: int, values: object, *, unit_id: int) -> None:
        raise AssertionError
