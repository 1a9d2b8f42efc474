"""MeterDriver against a real pymodbus server (CONTRACT 3.2)."""

from __future__ import annotations

import pytest

from controller.adapters.modbus import DeviceError, EndpointPool
from controller.drivers.meter import MeterDriver, MeterSample
from controller.sim.modbus_devices import SimMeter
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import meter_cfg


async def test_reads_power_frequency_islanded(site: SimModbusSite, endpoints: EndpointPool) -> None:
    sim = site.add(SimMeter(power_kw=41234.5, frequency_hz=59.95))
    await site.start()
    meter = MeterDriver(meter_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    assert await meter.read_power_kw() == 41234.5
    assert await meter.read_frequency_hz() == pytest.approx(59.95, abs=1e-5)
    assert await meter.read_islanded() is False
    sim.set_islanded(True)
    sim.set_frequency_hz(59.6)
    assert await meter.read_islanded() is True
    assert await meter.read_frequency_hz() == pytest.approx(59.6, abs=1e-5)


async def test_read_all_takes_two_requests(site: SimModbusSite, endpoints: EndpointPool) -> None:
    sim = site.add(SimMeter(power_kw=1500.0, frequency_hz=60.0, islanded=True))
    await site.start()
    meter = MeterDriver(meter_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    assert await meter.read_all() == MeterSample(1500.0, 60.0, True)
    # islanded first: the frequency is acted on as soon as its reply is in (I11)
    assert [(r.function_code, r.address, r.count) for r in sim.requests] == [(2, 0, 1), (4, 0, 4)]


async def test_site_meter_sums_its_loads(site: SimModbusSite, endpoints: EndpointPool) -> None:
    loads_kw = {"gpu": 20000.0, "mining": 30000.0, "aux": 1500.0}
    sim = site.add(SimMeter(power_source=lambda: sum(loads_kw.values())))
    await site.start()
    meter = MeterDriver(meter_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    assert await meter.read_power_kw() == 51500.0
    loads_kw["mining"] = 0.0
    assert (await meter.read_all()).power_kw == 21500.0


async def test_units_behind_one_gateway(site: SimModbusSite, endpoints: EndpointPool) -> None:
    poi, gpu = SimMeter(50000.0, unit_id=1), SimMeter(18000.0, unit_id=7)
    gateway = site.gateway(poi, gpu)
    await site.start()
    endpoint = endpoints.get("127.0.0.1", gateway.port)
    assert await MeterDriver(meter_cfg(gateway.port), endpoint).read_power_kw() == 50000.0
    gpu_meter = MeterDriver(meter_cfg(gateway.port, unit_id=7), endpoint)
    assert await gpu_meter.read_power_kw() == 18000.0
    assert len(endpoints) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
async def test_non_finite_reading_is_a_device_error(
    site: SimModbusSite, endpoints: EndpointPool, bad: float
) -> None:
    sim = site.add(SimMeter(power_kw=bad))
    await site.start()
    meter = MeterDriver(meter_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    with pytest.raises(DeviceError, match="power_kw"):
        await meter.read_all()
    with pytest.raises(DeviceError, match="power_kw"):
        await meter.read_power_kw()
