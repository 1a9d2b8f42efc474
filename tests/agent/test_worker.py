"""PoolWorker: a cmd has the miners to itself while it is carried out.

On a big pool a telemetry round is thousands of reads: started while a cmd's actions are being
sent, it takes the call slots and the agent's CPU from them (a tenth to a sixth of a
1,000-miner cut, measured). The acted miners are read again by the cmd's own follow-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from controller.adapters.mqtt import MqttSession
from controller.agent.driver import Discovered, MinerDriver, Reading
from controller.agent.metrics import AgentMetrics
from controller.agent.pool import Defaults, PoolAgent
from controller.agent.service import PoolWorker
from controller.agent.store import PoolStore

ACTION_S = 0.4  # each sleep call takes this long: a slow cut, for reads to fall into


class TimedDriver(MinerDriver):
    """Miners that answer at once, except a sleep; every read and action timed."""

    def __init__(self) -> None:
        super().__init__(timeout_s=2.0)
        self.reads: list[float] = []
        self.actions: list[tuple[float, float]] = []
        self.asleep: set[str] = set()
        self.all_asleep = asyncio.Event()
        self.miners = 0

    async def discover(self, ip: str) -> Discovered | None:
        return Discovered(object(), "S19j Pro", "stock", 3000.0, 100.0, ())

    async def read(self, ip: str, handle: Any) -> Reading | None:
        self.reads.append(time.monotonic())
        return Reading(0.0 if ip in self.asleep else 3000.0, None)

    async def sleep(self, ip: str, handle: Any) -> bool:
        started = time.monotonic()
        await asyncio.sleep(ACTION_S)
        self.asleep.add(ip)
        self.actions.append((started, time.monotonic()))
        if len(self.asleep) == self.miners:
            self.all_asleep.set()
        return True


class Session:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.published.append((topic, payload))


@contextlib.asynccontextmanager
async def running(worker: PoolWorker) -> AsyncIterator[None]:
    """The worker's two loops, from its first telemetry round until the block ends."""
    tasks = [
        asyncio.create_task(worker.run_telemetry()),
        asyncio.create_task(worker.run_commands()),
    ]
    try:
        await asyncio.wait_for(worker.polled.wait(), 2.0)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_no_telemetry_round_starts_while_a_cmd_is_carried_out(tmp_path: Path) -> None:
    driver = TimedDriver()
    ips = [f"10.0.0.{i}" for i in range(1, 5)]
    driver.miners = len(ips)
    pool = PoolAgent("c01", ips, driver, PoolStore(tmp_path, "c01"), Defaults(3000.0, 30.0))
    session = Session()
    worker = PoolWorker(pool, "curtaild", cast(MqttSession, session), AgentMetrics(),
                        poll_s=0.05)  # fmt: skip
    async with running(worker):
        await asyncio.sleep(0.2)  # rounds every 50 ms meanwhile
        worker.offer(json.dumps({"seq": 1, "target_kw": 0.0}).encode())
        await asyncio.wait_for(driver.all_asleep.wait(), 5.0)
        await asyncio.sleep(0.2)  # rounds again once the cmd is carried out
    first = min(started for started, _ in driver.actions)
    last = max(ended for _, ended in driver.actions)
    assert last - first >= ACTION_S
    assert [t for t in driver.reads if first <= t <= last] == []
    assert any(t > last for t in driver.reads)  # telemetry goes on after it
    assert pool.applied_seq == 1 and pool.state()["power_kw"] == 0.0


class SlowReads(TimedDriver):
    """Every read takes READ_S: a round longer than the gap between cmds."""

    async def read(self, ip: str, handle: Any) -> Reading | None:
        await asyncio.sleep(READ_S)
        return await super().read(ip, handle)


READ_S = 0.3


async def test_cmds_faster_than_a_round_do_not_starve_telemetry(tmp_path: Path) -> None:
    driver = SlowReads()
    ips = [f"10.0.0.{i}" for i in range(1, 5)]
    pool = PoolAgent("c01", ips, driver, PoolStore(tmp_path, "c01"), Defaults(3000.0, 30.0))
    worker = PoolWorker(pool, "curtaild", cast(MqttSession, Session()), AgentMetrics(),
                        poll_s=0.05)  # fmt: skip
    async with running(worker):
        read_before = len(driver.reads)
        # A cmd every 0.1 s (a round takes 0.3 s), each one that changes nothing: no follow-up
        # reads, only telemetry rounds can read the miners.
        for seq in range(1, 13):
            worker.offer(json.dumps({"seq": seq, "target_kw": 12.0}).encode())
            await asyncio.sleep(0.1)
    assert pool.applied_seq == 12
    assert len(driver.reads) - read_before >= 2 * len(ips)  # at least two rounds went through
