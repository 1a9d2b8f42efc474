"""The simulated firmwares, proven with pyasic itself: detection, wattage, sleep/wake, limits."""

from __future__ import annotations

import asyncio

from pyasic import get_miner

from controller.sim.miners.fleet import MinerSpec
from controller.sim.miners.state import RAMP_S
from tests.agent.conftest import MakeFleet


async def settle() -> None:
    await asyncio.sleep(RAMP_S + 0.2)


async def test_pyasic_detects_each_family_and_model(make_fleet: MakeFleet) -> None:
    fleet = await make_fleet(
        [MinerSpec("stock_antminer"), MinerSpec("luxos", model="Antminer S19 Pro")]
    )
    stock_ip, lux_ip = fleet.ips
    stock, lux = await get_miner(stock_ip), await get_miner(lux_ip)
    assert type(stock).__name__ == "BMMinerS19jPro"
    assert type(lux).__name__ == "LUXMinerS19Pro"
    assert stock is not None and stock.raw_model == "S19j Pro"
    assert lux is not None and lux.firmware == "LuxOS"


async def test_stock_antminer_sleeps_and_wakes_reports_hashrate_not_wattage(
    make_fleet: MakeFleet,
) -> None:
    fleet = await make_fleet([MinerSpec("stock_antminer", nominal_w=3068.0, j_per_th=29.5)])
    ip = fleet.ips[0]
    miner = await get_miner(ip)
    assert miner is not None
    assert await miner.get_wattage() is None  # stock firmware has no power reading
    assert await miner.is_mining() is True
    hashrate = await miner.get_hashrate()
    assert hashrate is not None and abs(float(hashrate) - 3068.0 / 29.5) < 0.1
    assert await miner.set_power_limit(2000) is False  # sleep or mine only
    assert await miner.stop_mining() is True
    await settle()
    assert fleet[ip].state.sleeping and fleet[ip].state.power_w() == 0.0
    assert await miner.is_mining() is False
    assert float(await miner.get_hashrate() or -1) == 0.0
    assert await miner.resume_mining() is True
    await settle()
    assert await miner.is_mining() is True
    assert fleet[ip].state.power_w() == 3068.0


async def test_luxos_wattage_moves_to_the_setpoint_and_limits_pick_a_profile(
    make_fleet: MakeFleet,
) -> None:
    fleet = await make_fleet([MinerSpec("luxos", nominal_w=3000.0, j_per_th=30.0)])
    ip = fleet.ips[0]
    miner = await get_miner(ip)
    assert miner is not None
    assert await miner.get_wattage() == 3000
    assert await miner.set_power_limit(2000) is True
    await asyncio.sleep(RAMP_S / 2)
    midway = await miner.get_wattage()
    assert midway is not None and 1950 < midway < 3000  # on its way, not there yet
    await settle()
    # The highest profile at or under 2000 W: 65% of 3000 W.
    assert await miner.get_wattage() == 1950
    assert await miner.set_power_limit(100) is False  # under the lowest profile (55%)
    assert await miner.stop_mining() is True
    await settle()
    assert await miner.get_wattage() == 0
    assert await miner.resume_mining() is True
    await settle()
    assert await miner.get_wattage() == 1950  # wakes at its profile
    assert await miner.set_power_limit(5000) is True  # the default profile: no limit
    await settle()
    assert await miner.get_wattage() == 3000


async def test_a_silent_miner_holds_pyasic_until_it_answers(make_fleet: MakeFleet) -> None:
    fleet = await make_fleet([MinerSpec("luxos")])
    ip = fleet.ips[0]
    miner = await get_miner(ip)
    assert miner is not None
    fleet[ip].state.answering = False
    call = asyncio.ensure_future(miner.get_wattage())
    await asyncio.sleep(0.5)
    assert not call.done()  # pyasic's own read timeout is 100 s
    fleet[ip].state.answering = True
    await asyncio.wait_for(call, 5.0)
