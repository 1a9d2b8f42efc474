"""PoolAgent against simulated miners through real pyasic, without MQTT: planning from what it
was told as well as what it read, and judging by the readings that follow."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.agent.driver import MinerDriver
from controller.agent.pool import Defaults, PoolAgent
from controller.agent.store import PoolStore
from controller.sim.miners.fleet import MinerSpec
from controller.sim.miners.state import RAMP_S
from tests.agent.conftest import MakeFleet
from tests.agent.test_agent_mqtt import SPECS


async def test_a_raise_right_after_a_cut_wakes_what_the_cut_slept(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    fleet = await make_fleet(SPECS)
    pool = PoolAgent("c01", fleet.ips, MinerDriver(2.0), PoolStore(tmp_path, "c01"),
                     Defaults(3250.0, 30.0), settle_s=30.0)  # fmt: skip
    await pool.refresh()
    full_kw = fleet.nominal_w() / 1000.0
    await pool.carry_out(1, 0.0)
    # The readings still say every miner draws: the raise must not plan from them alone.
    raised = await pool.carry_out(2, full_kw)
    assert len(raised.actions) == len(SPECS)
    await asyncio.sleep(RAMP_S + 0.3)
    assert not any(m.state.sleeping for m in fleet.miners.values())
    assert fleet.power_w() == fleet.nominal_w()


async def test_an_action_the_readings_do_not_bear_out_is_sent_again(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    fleet = await make_fleet([MinerSpec("stock_antminer"), MinerSpec("stock_antminer")])
    pool = PoolAgent("c01", fleet.ips, MinerDriver(2.0), PoolStore(tmp_path, "c01"),
                     Defaults(3250.0, 30.0), settle_s=0.5)  # fmt: skip
    await pool.refresh()
    await pool.carry_out(1, 3.1)  # room for one: the less efficient one sleeps
    await asyncio.sleep(RAMP_S + 0.1)
    slept = next(m for m in fleet.miners.values() if m.state.sleeping)
    slept.state.set_sleeping(False)  # someone wakes it by hand (or it rebooted)
    await asyncio.sleep(RAMP_S + 0.1)
    await pool.refresh()
    assert await pool.reconcile() == 1
    await asyncio.sleep(RAMP_S + 0.1)
    await pool.refresh()
    assert slept.state.sleeping and await pool.reconcile() == 0
    assert pool.state()["power_kw"] <= 3.1
    assert PoolStore(tmp_path, "c01").load().applied_seq == 1  # kept for the next start
