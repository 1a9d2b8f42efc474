"""ModbusEndpoint against real pymodbus servers: encoding, errors, timeouts, reconnects."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest
from pymodbus.constants import ExcCodes

from controller.adapters.modbus import (
    DeviceError,
    EndpointPool,
    ModbusEndpoint,
    float32_to_registers,
    registers_to_float32s,
)
from controller.sim.modbus_devices import SimMeter, SimPdu, SimPlc
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import TIMEOUT_S


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_float32_is_big_endian_high_word_first() -> None:
    raw = struct.pack(">f", 1234.5)
    assert float32_to_registers(1234.5) == [raw[0] << 8 | raw[1], raw[2] << 8 | raw[3]]
    assert float32_to_registers(1234.5) == [0x449A, 0x5000]
    assert registers_to_float32s([0x449A, 0x5000, 0x4270, 0x0000]) == [1234.5, 60.0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39])
def test_float32_refuses_what_it_cannot_encode(bad: float) -> None:
    with pytest.raises(ValueError, match="float32"):
        float32_to_registers(bad)


async def test_pool_shares_one_endpoint_per_gateway(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    a, b = SimMeter(100.0, unit_id=1), SimMeter(200.0, unit_id=2)
    gateway = site.gateway(a, b)
    await site.start()
    first = endpoints.get("127.0.0.1", gateway.port)
    assert endpoints.get("127.0.0.1", gateway.port) is first
    assert endpoints.get("localhost", gateway.port) is not first  # keyed by what config says
    # Concurrent requests for two units on one connection: the lock keeps them apart.
    results = await asyncio.gather(
        *(first.read_input_float32s(0, 1, unit_id=u) for u in (1, 2, 1, 2, 1, 2))
    )
    assert results == [[100.0], [200.0]] * 3
    assert len(a.requests) == 3
    assert len(b.requests) == 3


async def test_closed_port_is_a_transient_error_fast() -> None:
    endpoint = ModbusEndpoint("127.0.0.1", closed_port(), timeout_s=TIMEOUT_S)
    started = time.perf_counter()
    with pytest.raises(DeviceError) as info:
        await endpoint.read_coils(0, 1, unit_id=1)
    assert info.value.transient
    assert "cannot connect" in str(info.value)
    assert time.perf_counter() - started < TIMEOUT_S
    assert not endpoint.connected


async def test_unroutable_host_fails_within_timeout() -> None:
    # TEST-NET-1 (RFC 5737): either unreachable at once or silently dropped; never a hang.
    endpoint = ModbusEndpoint("192.0.2.1", 502, timeout_s=TIMEOUT_S)
    started = time.perf_counter()
    with pytest.raises(DeviceError) as info:
        await endpoint.read_input_registers(0, 2, unit_id=1)
    assert info.value.transient
    assert time.perf_counter() - started < TIMEOUT_S + 0.5


async def test_connect_that_never_completes_times_out(black_hole_port: int) -> None:
    endpoint = ModbusEndpoint("127.0.0.1", black_hole_port, timeout_s=TIMEOUT_S)
    started = time.perf_counter()
    with pytest.raises(DeviceError, match="cannot connect") as info:
        await endpoint.read_coils(0, 1, unit_id=1)
    assert info.value.transient
    assert TIMEOUT_S * 0.9 < time.perf_counter() - started < TIMEOUT_S + 0.5


async def test_failed_connect_holds_off_queued_requests(black_hole_port: int) -> None:
    endpoint = ModbusEndpoint("127.0.0.1", black_hole_port, timeout_s=TIMEOUT_S)
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(endpoint.read_coils(0, 1, unit_id=u) for u in range(1, 11)), return_exceptions=True
    )
    assert all(isinstance(o, DeviceError) and o.transient for o in outcomes)
    # Ten devices behind one dead gateway cost one connect attempt, not ten timeouts.
    assert time.perf_counter() - started < TIMEOUT_S + 0.5
    assert endpoint.failures_total == 10


async def test_silent_device_times_out_then_recovers(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    pdu = site.add(SimPdu(4, 3.5))
    await site.start()
    endpoint = endpoints.get("127.0.0.1", pdu.port)
    pdu.stall_s = 5.0
    started = time.perf_counter()
    with pytest.raises(DeviceError) as info:
        await endpoint.read_coils(0, 4, unit_id=1)
    elapsed = time.perf_counter() - started
    assert info.value.transient
    assert TIMEOUT_S * 0.9 < elapsed < TIMEOUT_S + 0.5
    pdu.stall_s = 0.0
    assert await endpoint.read_coils(0, 4, unit_id=1) == [True] * 4


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (ExcCodes.ILLEGAL_ADDRESS, False),
        (ExcCodes.ILLEGAL_FUNCTION, False),
        (ExcCodes.DEVICE_BUSY, True),
        (ExcCodes.GATEWAY_NO_RESPONSE, True),
    ],
)
async def test_error_reply_becomes_device_error(
    site: SimModbusSite, endpoints: EndpointPool, code: ExcCodes, transient: bool
) -> None:
    plc = site.add(SimPlc(1000.0))
    await site.start()
    endpoint = endpoints.get("127.0.0.1", plc.port)
    plc.fault = code
    with pytest.raises(DeviceError) as info:
        await endpoint.read_input_float32s(0, 2, unit_id=1)
    assert info.value.exception_code == code
    assert info.value.transient is transient
    plc.fault = None
    assert await endpoint.read_input_float32s(0, 2, unit_id=1) == [1000.0, 1000.0]


async def test_out_of_range_address_is_permanent(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    meter = site.add(SimMeter())
    await site.start()
    with pytest.raises(DeviceError) as info:
        await endpoints.get("127.0.0.1", meter.port).read_input_registers(100, 2, unit_id=1)
    assert not info.value.transient
    assert meter.requests[-1].address == 100


async def test_server_restart_reconnects(site: SimModbusSite, endpoints: EndpointPool) -> None:
    meter = site.add(SimMeter(42.0))
    await site.start()
    port = meter.port
    endpoint = endpoints.get("127.0.0.1", port)
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [42.0]
    assert endpoint.connected

    await meter.stop()
    started = time.perf_counter()
    with pytest.raises(DeviceError) as info:
        await endpoint.read_input_float32s(0, 1, unit_id=1)
    assert info.value.transient
    # The dropped connection fails the request at once rather than at its timeout.
    assert time.perf_counter() - started < TIMEOUT_S

    await meter.start()
    assert meter.port == port  # restarts keep the port the config points at
    meter.set_power_kw(43.0)
    await asyncio.sleep(0.15)  # past the connect hold-off of the failed attempt, if any
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [43.0]
    assert endpoint.connected


async def test_write_helpers_send_one_request_each(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    plc = site.add(SimPlc(3000.0))
    await site.start()
    endpoint = endpoints.get("127.0.0.1", plc.port)
    await endpoint.write_float32(0, 1500.25, unit_id=1)
    assert [(r.function_code, r.address, r.count) for r in plc.requests] == [(16, 0, 2)]
    assert await endpoint.read_holding_registers(0, 2, unit_id=1) == float32_to_registers(1500.25)
    assert endpoint.requests_total == 2


async def test_cancelled_request_cannot_poison_the_next(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    meter = site.add(SimMeter(power_kw=1.0))
    await site.start()
    endpoint = endpoints.get("127.0.0.1", meter.port)
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [1.0]
    meter.stall_s = 0.1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(endpoint.read_input_float32s(0, 1, unit_id=1), 0.02)
    assert not endpoint.connected  # dropped, so the late reply has nowhere to land
    meter.stall_s = 0.0
    meter.set_power_kw(2.0)
    # Asks for registers 2-3 (frequency): a stale reply to the cancelled request would say 1.0.
    assert await endpoint.read_input_float32s(2, 1, unit_id=1) == [60.0]
    await asyncio.sleep(0.15)  # the stalled reply is now sent into a closed connection
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [2.0]


async def test_a_write_to_a_closed_transport_reconnects(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    # uvloop raises RuntimeError when pymodbus writes to a transport that closed under it;
    # the endpoint must treat it as a lost connection (and reconnect), not fail for good.
    meter = site.add(SimMeter(power_kw=1.0))
    await site.start()
    endpoint = endpoints.get("127.0.0.1", meter.port)
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [1.0]

    async def closed_handler(_client: object) -> object:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the "
                           "handler is closed")  # fmt: skip

    with pytest.raises(DeviceError, match="handler is closed") as info:
        await endpoint._call("read_input_registers", closed_handler)  # type: ignore[arg-type]
    assert info.value.transient
    assert not endpoint.connected
    assert await endpoint.read_input_float32s(0, 1, unit_id=1) == [1.0]  # reconnected

    async def bug(_client: object) -> object:
        raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        await endpoint._call("read_input_registers", bug)  # type: ignore[arg-type]
