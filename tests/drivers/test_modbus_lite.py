"""The benchmark's light Modbus responder speaks real Modbus TCP: the daemon's own drivers read
and write it through pymodbus exactly as they do a pymodbus server (CONTRACT 3.1, 3.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controller.adapters.modbus import DeviceError, EndpointPool
from controller.drivers.meter import MeterDriver, MeterSample
from controller.drivers.pdu import PduDriver
from controller.sim.modbus_lite import CoilWrite, LiteMeter, LitePdu, LiteServer
from tests.drivers.helpers import meter_cfg, pdu_cfg


@pytest.fixture
async def servers() -> AsyncIterator[list[LiteServer]]:
    started: list[LiteServer] = []
    try:
        yield started
    finally:
        for server in started:
            await server.stop()


async def serve(servers: list[LiteServer], device: LitePdu | LiteMeter) -> int:
    server = LiteServer({1: device})
    servers.append(server)
    return await server.start()


async def test_pdu_driver_switches_and_reads_outlets(
    servers: list[LiteServer], endpoints: EndpointPool
) -> None:
    writes: list[CoilWrite] = []
    sim = LitePdu("pdu-c01", 8, 3.5, on_write=lambda _pdu, w: writes.append(w))
    port = await serve(servers, sim)
    pdu = PduDriver(pdu_cfg(port), endpoints.get("127.0.0.1", port), lambda _name: None)
    assert await pdu.read_outlets() == [True] * 8
    wanted = [True, True, False, False, True, False, True, True]
    assert await pdu.set_outlets(wanted) == 2  # two runs of changed outlets, two requests
    assert sim.outlets_on == wanted
    assert [(w.first, w.values) for w in writes] == [(2, (False, False)), (5, (False,))]
    assert await pdu.read_outlets() == wanted
    assert await pdu.read_outlet_power_w() == [3150.0 if on else 0.0 for on in wanted]
    assert await pdu.read_power_kw() == pytest.approx(5 * 3.15)


async def test_meter_driver_reads_power_frequency_islanded(
    servers: list[LiteServer], endpoints: EndpointPool
) -> None:
    reads: list[float] = []
    sim = LiteMeter("poi", lambda: 41234.5, 59.6, on_read=lambda _at, hz: reads.append(hz))
    port = await serve(servers, sim)
    meter = MeterDriver(meter_cfg(port), endpoints.get("127.0.0.1", port))
    sample = await meter.read_all()
    assert sample == MeterSample(41234.5, pytest.approx(59.6, abs=1e-5), False)  # type: ignore[arg-type]
    sim.islanded = True
    assert await meter.read_islanded() is True
    assert reads == [pytest.approx(59.6)]


async def test_out_of_range_and_unknown_functions_are_exceptions(
    servers: list[LiteServer], endpoints: EndpointPool
) -> None:
    port = await serve(servers, LitePdu("pdu-c01", 8, 3.5))
    endpoint = endpoints.get("127.0.0.1", port)
    with pytest.raises(DeviceError) as address:
        await endpoint.read_coils(4, 8, unit_id=1)
    assert address.value.exception_code == 2
    with pytest.raises(DeviceError) as function:
        await endpoint.read_holding_registers(0, 2, unit_id=1)
    assert function.value.exception_code == 1
    await endpoint.write_coils(7, [False], unit_id=1)  # the endpoint still works after both
    assert await endpoint.read_coils(0, 8, unit_id=1) == [True] * 7 + [False]
