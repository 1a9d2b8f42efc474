"""The demo's lab pool: simulated miners driven by the real `curtaild agent` through pyasic.

Eight miners (four stock Antminers that can only sleep, four LuxOS with power profiles) on
their own loopback addresses and real ports, and the agent (in the demo's process, on the
demo's broker) serving pool `LAB_POOL`. Binding port 80 needs root (or CAP_NET_BIND_SERVICE),
and the agent needs pyasic: without either, `start_lab` returns None and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.config import MqttConfig
from controller.sim.miners.fleet import MinerSpec, SimMinerFleet

LAB_POOL = "lab-pyasic"
LAB_SPECS = [MinerSpec("stock_antminer", j_per_th=29.5 + i) for i in range(4)] + [
    MinerSpec("luxos", nominal_w=3000.0, j_per_th=26.0 + i) for i in range(4)
]
LAB_MAX_KW = 24.0  # the fleet draws 24.27 kW flat out: the pool's rating sits just under


@dataclass
class Lab:
    fleet: SimMinerFleet
    agent: Any  # controller.agent.service.Agent (pyasic imported only when the lab runs)
    task: asyncio.Task[None]

    def line(self) -> str:
        states = [m.state for m in self.fleet.miners.values()]
        asleep = sum(s.sleeping for s in states)
        limited = sum(s.limit_w is not None and not s.sleeping for s in states)
        return (f"{LAB_POOL}: {self.fleet.power_w() / 1000:.2f} kW measured at the miners, "
                f"{asleep} asleep, {limited} limited")  # fmt: skip

    async def stop(self) -> None:
        self.agent.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        await self.fleet.close()


async def start_lab(mqtt: MqttConfig, state_dir: Path) -> tuple[Lab | None, str]:
    """(the lab, a line for the console); (None, why not) when it cannot run here."""
    if importlib.util.find_spec("pyasic") is None:
        return None, f"{LAB_POOL}: skipped (pyasic not installed: pip install 'curtaild[agent]')"
    fleet = SimMinerFleet(LAB_SPECS)
    try:
        await fleet.start()
    except OSError as exc:
        return None, f"{LAB_POOL}: skipped (simulated miners need port 80 on 127.x: {exc})"
    from controller.agent.config import AgentConfig, AgentPool, AgentSection  # noqa: PLC0415
    from controller.agent.service import Agent  # noqa: PLC0415 (pyasic: the agent extra)

    section = AgentSection(
        topic_prefix=mqtt.topic_prefix,
        poll_s=1.0,
        miner_timeout_s=2.0,
        state_dir=str(state_dir),
        metrics_listen="",
        pools=[AgentPool(name=LAB_POOL, miners=fleet.ips)],
    )
    agent_mqtt = mqtt.model_copy(update={"client_id": f"{mqtt.client_id}-lab"})
    agent = Agent(AgentConfig(mqtt=agent_mqtt, agent=section))
    task = asyncio.create_task(agent.run(), name="lab-agent")
    lab = Lab(fleet, agent, task)
    return lab, (f"{LAB_POOL}: {len(fleet.ips)} simulated miners (stock Antminer, LuxOS) on "
                 f"{fleet.ips[0]}.., driven by the real agent through pyasic")  # fmt: skip
