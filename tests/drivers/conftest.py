"""Fixtures for driver tests: real pymodbus TCP servers on 127.0.0.1 free ports, short timeouts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from controller.adapters.modbus import EndpointPool
from controller.clock import FakeClock
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import TIMEOUT_S


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
async def site() -> AsyncIterator[SimModbusSite]:
    """Add simulators, then `await site.start()`; every server is stopped afterwards."""
    sim_site = SimModbusSite()
    try:
        yield sim_site
    finally:
        await sim_site.stop()


@pytest.fixture
async def endpoints() -> AsyncIterator[EndpointPool]:
    pool = EndpointPool(timeout_s=TIMEOUT_S)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def black_hole_port() -> Iterator[int]:
    """A loopback port where connect() hangs: a listener whose accept queue is kept full, so
    Linux drops further SYNs (the loopback stand-in for a device that vanished off the LAN)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            yield port
        finally:
            for filler in fillers:
                filler.close()
