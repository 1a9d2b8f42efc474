"""MinerDriver against simulated LuxOS through real pyasic: how many RPCs an action costs.

A limit on a 1,000-miner pool is 1,000 actions at once, and the agent's CPU is what grows with
the pool: pyasic's `set_power_limit` reads the config and profiles, checks ATM and then sends
`profileset` (four RPCs and a re-parse of the config per action). The profiles do not change
between discovery and an action, so the driver sends `profileset` alone, and falls back to
pyasic's way when the firmware refuses it.
"""

from __future__ import annotations

import asyncio

from controller.agent.driver import MinerDriver
from controller.sim.miners.fleet import MinerSpec
from controller.sim.miners.luxos import LuxOS
from controller.sim.miners.state import RAMP_S
from tests.agent.conftest import MakeFleet


def luxos(fleet_item: object) -> LuxOS:
    assert isinstance(fleet_item, LuxOS)
    return fleet_item


async def settled_w(miner: LuxOS) -> float:
    await asyncio.sleep(RAMP_S + 0.1)
    return miner.state.power_w()


async def test_a_luxos_limit_is_one_profileset_once_logged_on(make_fleet: MakeFleet) -> None:
    fleet = await make_fleet([MinerSpec("luxos", nominal_w=3000.0, j_per_th=30.0)])
    ip = fleet.ips[0]
    miner = luxos(fleet[ip])
    driver = MinerDriver(timeout_s=2.0)
    found = await driver.discover(ip)
    assert found is not None and found.limits_w[0] == 1650.0 and found.nominal_w == 3000.0
    assert await driver.set_limit(ip, found.handle, 2000.0)
    assert await settled_w(miner) == 1950.0  # the highest profile at or under 2000 W
    miner.commands.clear()
    assert await driver.set_limit(ip, found.handle, 2500.0)
    assert dict(miner.commands) == {"profileset": 1}  # no config, profiles or atm read again
    assert await settled_w(miner) == 2400.0
    assert await driver.set_limit(ip, found.handle, 3000.0)  # the default profile: no limit
    assert await settled_w(miner) == 3000.0
    assert not await driver.set_limit(ip, found.handle, 100.0)  # under the lowest profile
    assert await settled_w(miner) == 3000.0


async def test_a_refused_profileset_falls_back_to_pyasic_which_turns_atm_off_around_it(
    make_fleet: MakeFleet,
) -> None:
    fleet = await make_fleet([MinerSpec("luxos", nominal_w=3000.0, j_per_th=30.0)])
    ip = fleet.ips[0]
    miner = luxos(fleet[ip])
    miner.atm_enabled = True
    driver = MinerDriver(timeout_s=2.0)
    found = await driver.discover(ip)
    assert found is not None
    assert await driver.set_limit(ip, found.handle, 2000.0)
    assert await settled_w(miner) == 1950.0
    assert miner.atm_enabled  # pyasic turned it back on
    miner.commands.clear()
    # This miner refuses profileset alone: the driver goes pyasic's way at once from now on.
    assert await driver.set_limit(ip, found.handle, 2500.0)
    assert miner.commands["profileset"] == 1 and miner.commands["atmset"] == 2
    assert await settled_w(miner) == 2400.0
    # Found again (after a reboot, say): profileset alone is tried again, ATM now off.
    miner.atm_enabled = False
    found = await driver.discover(ip)
    assert found is not None
    miner.commands.clear()
    assert await driver.set_limit(ip, found.handle, 2000.0)
    assert miner.commands["atmset"] == 0 and miner.commands["config"] == 0
    assert await settled_w(miner) == 1950.0
