"""A small real site for integration tests: simulated devices in the test process, the real
`curtaild run` as a subprocess, mosquitto as the broker.

Pools (hashprice 50, fee 0.02): a1 17 J/TH (breakeven 120.1 $/MWh), a2 22 (92.8, ufr),
a3 30 (68.1), plc1 25 (81.7, PLC), px 40 (51.0, outlets only). POI 30 MW, aux 1 MW, margin 0.5
MW, one GPU tenant of 10 MW firm on a protected PDU: envelope 18.5 MW, fleet 11.24 MW.

For fault injection (tests/integration/test_faults_*.py) the daemon can be killed with SIGKILL
and started again on the same config and state dir while the devices keep running (`LiveSite`
in live.py), devices can be down at start (`down=`), the simulated site adjusted before it
starts (`setup=`), messages retained before the daemon starts (`before_spawn=`), and sd_notify
observed (`notify=True`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from controller.config import Config, MqttConfig
from controller.config_render import render_toml
from controller.sim.configs import PoolShape, TenantShape, build_config, free_ports, with_sections
from controller.sim.configs import site_data as config_site_data
from controller.sim.site import SimSite
from tests.integration.documents import iso_now, sced
from tests.integration.faults import NotifyListener
from tests.integration.live import ROOT, LiveSite, spawn_daemon, stop_daemon
from tests.support import MqttProbe

# Other integration modules import the documents, ROOT and spawn_daemon from here.
__all__ = ["FLEET_KW", "POI_KW", "ROOT", "LiveSite", "iso_now", "live_site", "sced", "site_data",
           "spawn_daemon", "write_config"]  # fmt: skip

# The site of `site_data` with its defaults: every pool drawing what it can (px: 24 outlets at
# 9 kW each), and the POI import limit.
FLEET_KW = 3000 + 3000 + 3000 + 2000 + 216.0
POI_KW = 30000.0

POOLS = (
    PoolShape("a1", max_kw=3000, efficiency_j_per_th=17.0, outlets=64, outlet_kw=60.0),
    PoolShape("a2", max_kw=3000, efficiency_j_per_th=22.0, ufr=True, outlets=64, outlet_kw=60.0),
    PoolShape("a3", max_kw=3000, efficiency_j_per_th=30.0, outlets=64, outlet_kw=60.0),
    PoolShape("plc1", "modbus", max_kw=2000, efficiency_j_per_th=25.0, outlets=0),
    PoolShape("px", "pdu", max_kw=240, efficiency_j_per_th=40.0, outlets=24, outlet_kw=10.0),
)
TENANT = TenantShape("tenant-a", 10000, meters=("gpu-a",), pdus=("pdu-gpu",), outlet_kw=60.0)


def site_data(mqtt: MqttConfig, **sections: Any) -> dict[str, Any]:
    """The site's config dict, every device on a free loopback port; `sections` on top."""
    ports = free_ports()
    data = config_site_data(POOLS, [TENANT], poi_limit_kw=POI_KW, aux_kw=1000, margin_kw=500,
                            name="it", ports=ports, sections={
        "mqtt": {"host": mqtt.host, "port": mqtt.port, "client_id": mqtt.client_id,
                 "topic_prefix": mqtt.topic_prefix, "keepalive_s": 5},
        "feeds": {"dispatch_topic": f"{mqtt.topic_prefix}-qse/dispatch",
                  "price_topic": f"{mqtt.topic_prefix}-ercot/prices/#"},
        "economics": {"min_run_s": 0, "min_curtail_s": 0, "hysteresis_usd_per_mwh": 10},
        "control": {"tick_s": 0.2, "confirm_timeout_s": 1.0, "ramp_up_kw_per_s": 100000,
                    "state_dir": "/tmp"},
        "dispatch": {"frequency_reset_s": 1},
        "metrics": {"listen": f"127.0.0.1:{next(ports)}"},
    })  # fmt: skip
    return with_sections(data, sections)


def write_config(data: dict[str, Any], path: Path) -> Config:
    config = build_config(data)
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password")
    path.write_text(render_toml(dumped))
    return config


@contextlib.asynccontextmanager
async def live_site(
    mqtt: MqttConfig,
    tmp_path: Path,
    *,
    stuck: frozenset[str] = frozenset(),
    setup: Callable[[SimSite], None] | None = None,
    down: frozenset[str] = frozenset(),
    before_spawn: Callable[[LiveSite], Awaitable[None]] | None = None,
    notify: bool = False,
    watchdog_s: float | None = None,
    wait_online: bool = True,
    **sections: Any,
) -> AsyncIterator[LiveSite]:
    """Devices up, daemon started and online, a probe on the site's topics; all stopped after.

    `setup(sim)` runs before the devices start (agent faults, outlet states); `down` names
    Modbus devices not served at start; `before_spawn(site)` runs once the probe is connected
    and every live agent's retained state is on the broker, before the daemon starts;
    `notify` passes a NotifyListener as NOTIFY_SOCKET (and `watchdog_s` as WATCHDOG_USEC).
    `control.state_dir` is a directory of this test unless `control={"state_dir": ...}` says.
    """
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    sections["control"] = {"state_dir": str(state_dir), **sections.get("control", {})}
    config_path = tmp_path / "curtaild.toml"
    config = write_config(site_data(mqtt, **sections), config_path)
    sim = SimSite(config, mqtt=mqtt, agent_delay_s=0.05, stuck_pools=stuck, plc_delay_s=0.05)
    if setup is not None:
        setup(sim)
    site: LiveSite | None = None
    async with contextlib.AsyncExitStack() as stack:
        await sim.start(down)
        stack.push_async_callback(_stop_sim, sim)
        listener = await stack.enter_async_context(NotifyListener()) if notify else None
        env: dict[str, str] = {}
        if listener is not None:
            env["NOTIFY_SOCKET"] = str(listener.path)
            if watchdog_s is not None:
                env["WATCHDOG_USEC"] = str(round(watchdog_s * 1e6))
        probe = await stack.enter_async_context(
            MqttProbe(mqtt.host, mqtt.port, [f"{config.mqtt.topic_prefix}/#"])
        )
        site = LiveSite(config, sim, None, probe, tmp_path / "curtaild.log", config_path,
                        listener, env)  # fmt: skip
        stack.push_async_callback(stop_daemon, site)
        for agent in sim.agents.values():  # the daemon starts with the agents' states retained
            if agent.alive:
                await probe.wait_json(agent.state_topic, timeout_s=10.0)
        if before_spawn is not None:
            await before_spawn(site)
        site.spawn()
        if wait_online:
            await site.wait_online()
        yield site


async def _stop_sim(sim: SimSite) -> None:
    await sim.stop()
    await asyncio.sleep(0)
