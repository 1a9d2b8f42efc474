"""PduDriver against a real pymodbus server: diff writes, contiguous grouping, protected PDUs."""

from __future__ import annotations

import asyncio

import pytest

from controller.adapters.modbus import DeviceError, EndpointPool
from controller.drivers.pdu import PduDriver, ProtectedWriteRefused, changed_runs
from controller.sim.modbus_devices import SimPdu
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import pdu_cfg


def coil_writes_on_wire(sim: SimPdu) -> list[tuple[int, int]]:
    return [(r.address, r.count) for r in sim.requests if r.function_code in (5, 15)]


@pytest.mark.parametrize(
    ("known", "desired", "runs"),
    [
        ([True] * 4, [True] * 4, []),
        ([None] * 4, [True] * 4, [(0, 4)]),
        ([True, True, True, True], [False, True, False, False], [(0, 1), (2, 4)]),
        ([False, None, False, True], [False, False, False, True], [(1, 2)]),
        ([True, False, True, False], [False, True, False, True], [(0, 4)]),
    ],
)
def test_changed_runs(
    known: list[bool | None], desired: list[bool], runs: list[tuple[int, int]]
) -> None:
    assert changed_runs(known, desired) == runs


async def test_writes_only_changed_outlets_grouped(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(8, 3.5))
    await site.start()
    driver = PduDriver(pdu_cfg(sim.port), endpoints.get("127.0.0.1", sim.port), _never)
    assert await driver.read_outlets() == [True] * 8

    desired = [True, False, False, True, True, False, True, True]
    assert await driver.set_outlets(desired) == 2
    assert coil_writes_on_wire(sim) == [(1, 2), (5, 1)]
    assert sim.coil_write_requests == [(1, [False, False]), (5, [False])]
    assert sim.outlets_on == desired
    assert sim.coil_writes == [0, 1, 1, 0, 0, 1, 0, 0]

    # Same target again: nothing on the wire.
    assert await driver.set_outlets(desired) == 0
    assert len(coil_writes_on_wire(sim)) == 2

    # Restore outlets 1..2 only; 5 stays off and is not rewritten.
    restored = [True, True, True, True, True, False, True, True]
    assert await driver.set_outlets(restored) == 1
    assert coil_writes_on_wire(sim)[-1] == (1, 2)
    assert sim.coil_writes == [0, 2, 2, 0, 0, 1, 0, 0]


async def test_unknown_state_writes_everything_in_one_request(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(24, 3.5, initially_on=False))
    await site.start()
    driver = PduDriver(pdu_cfg(sim.port, outlets=24), endpoints.get("127.0.0.1", sim.port), _never)
    assert await driver.set_outlets([True] * 24) == 1
    assert coil_writes_on_wire(sim) == [(0, 24)]
    assert sim.outlets_on == [True] * 24


async def test_power_registers_follow_coils(site: SimModbusSite, endpoints: EndpointPool) -> None:
    sim = site.add(SimPdu(4, 3.5, load_fraction=0.9))
    await site.start()
    driver = PduDriver(pdu_cfg(sim.port, outlets=4), endpoints.get("127.0.0.1", sim.port), _never)
    sim.set_outlet_load_w(3, 1234.0)
    assert await driver.read_outlet_power_w() == [3150.0, 3150.0, 3150.0, 1234.0]
    await driver.read_outlets()
    await driver.set_outlets([False, True, True, True])
    assert await driver.read_outlet_power_w() == [0.0, 3150.0, 3150.0, 1234.0]
    assert await driver.read_power_kw() == pytest.approx(7.534)


async def test_profile_offsets(site: SimModbusSite, endpoints: EndpointPool) -> None:
    sim = site.add(SimPdu(4, 1.0, first_coil=100, first_power_register=40))
    await site.start()
    cfg = pdu_cfg(sim.port, outlets=4, first_coil=100, first_power_register=40)
    driver = PduDriver(cfg, endpoints.get("127.0.0.1", sim.port), _never)
    await driver.read_outlets()
    await driver.set_outlets([True, True, False, True])
    assert coil_writes_on_wire(sim) == [(102, 1)]
    assert await driver.read_outlet_power_w() == [900.0, 900.0, 0.0, 900.0]


async def test_failed_write_leaves_outlets_unknown(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(4, 3.5))
    await site.start()
    driver = PduDriver(pdu_cfg(sim.port, outlets=4), endpoints.get("127.0.0.1", sim.port), _never)
    await driver.read_outlets()
    await sim.stop()
    with pytest.raises(DeviceError):
        await driver.set_outlets([False, False, True, True])
    assert driver.known_outlets == (None, None, True, True)
    await sim.start()
    writes_before = len(sim.coil_write_requests)
    for _ in range(20):  # the endpoint holds off briefly after a failed connect
        try:
            await driver.set_outlets([False, False, True, True])
            break
        except DeviceError:
            await asyncio.sleep(0.05)
    assert sim.coil_write_requests[writes_before:] == [(0, [False, False])]


async def test_protected_pdu_is_never_written(site: SimModbusSite, endpoints: EndpointPool) -> None:
    sim = site.add(SimPdu(8, 10.0))
    await site.start()
    refused: list[str] = []
    cfg = pdu_cfg(sim.port, protected=True)
    driver = PduDriver(cfg, endpoints.get("127.0.0.1", sim.port), refused.append)

    # Reads work: the tenant's load is still metered.
    assert await driver.read_outlets() == [True] * 8
    for target in ([False] * 8, [True] * 8, [True] * 7 + [False]):
        with pytest.raises(ProtectedWriteRefused):
            await driver.set_outlets(target)
    # Even the private lowest write method refuses on its own.
    with pytest.raises(ProtectedWriteRefused):
        await driver._write_coils(0, [False])
    # And the handle it holds cannot write either.
    with pytest.raises(ProtectedWriteRefused):
        await driver._endpoint.write_coils(0, [False], unit_id=1)

    assert refused == ["pdu-gpu-a1"] * 4
    assert coil_writes_on_wire(sim) == []
    assert sim.coil_writes == [0] * 8
    assert sim.outlets_on == [True] * 8
    assert driver.write_requests_total == 0


async def test_protected_refusal_survives_a_failing_callback(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(2, 10.0))
    await site.start()

    def broken(_name: str) -> None:
        raise RuntimeError("metrics backend down")

    cfg = pdu_cfg(sim.port, outlets=2, protected=True)
    driver = PduDriver(cfg, endpoints.get("127.0.0.1", sim.port), broken)
    with pytest.raises(ProtectedWriteRefused):
        await driver.set_outlets([False, False])
    assert sim.requests == []


async def test_wrong_length_is_rejected_before_the_wire(
    site: SimModbusSite, endpoints: EndpointPool
) -> None:
    sim = site.add(SimPdu(4, 3.5))
    await site.start()
    driver = PduDriver(pdu_cfg(sim.port, outlets=4), endpoints.get("127.0.0.1", sim.port), _never)
    with pytest.raises(ValueError, match="4 outlets"):
        await driver.set_outlets([False] * 3)
    assert sim.requests == []


def _never(name: str) -> None:
    raise AssertionError(f"unprotected PDU {name} reported a protected refusal")
