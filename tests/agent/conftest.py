"""Simulated miners for the agent tests: each on its own 127.x.y.z with ports 4028 and 80."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from controller.sim.miners.fleet import MinerSpec, SimMinerFleet

MakeFleet = Callable[[Sequence[MinerSpec]], Awaitable[SimMinerFleet]]


@pytest.fixture
async def make_fleet() -> AsyncIterator[MakeFleet]:
    """Start fleets of simulated miners; every one is closed when the test ends."""
    made: list[SimMinerFleet] = []

    async def make(specs: Sequence[MinerSpec]) -> SimMinerFleet:
        fleet = SimMinerFleet(specs)
        made.append(fleet)
        await fleet.start()
        return fleet

    try:
        yield make
    finally:
        for fleet in made:
            await fleet.close()
