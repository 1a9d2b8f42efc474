"""A small real site for integration tests: simulated devices in the test process, the real
`curtaild run` as a subprocess, mosquitto as the broker.

Pools (hashprice 50, fee 0.02): a1 17 J/TH (breakeven 120.1 $/MWh), a2 22 (92.8, ufr),
a3 30 (68.1), plc1 25 (81.7, PLC), px 40 (51.0, outlets only). POI 30 MW, aux 1 MW, margin 0.5
MW, one GPU tenant of 10 MW firm on a protected PDU: envelope 18.5 MW, fleet 11.24 MW.

For fault injection (tests/integration/test_faults_*.py) the daemon can be killed with SIGKILL
and started again on the same config and state dir while the devices keep running, devices can
be down at start (`down=`), the simulated site adjusted before it starts (`setup=`), messages
retained before the daemon starts (`before_spawn=`), and sd_notify observed (`notify=True`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controller.config import Config, MqttConfig
from controller.config_checks import check_site
from controller.config_render import render_toml
from controller.sim.site import SimSite
from tests.integration.faults import MetricsView, NotifyListener
from tests.support import MqttProbe, free_port

CENTRAL = ZoneInfo("America/Chicago")
ROOT = Path(__file__).resolve().parents[2]
# The site of `site_data` with its defaults: every pool drawing what it can (px: 24 outlets at
# 9 kW each), and the POI import limit.
FLEET_KW = 3000 + 3000 + 3000 + 2000 + 216.0
POI_KW = 30000.0


def site_data(mqtt: MqttConfig, **sections: Any) -> dict[str, Any]:
    def pdu(name: str, outlets: int = 64, outlet_kw: float = 60.0, **kw: Any) -> dict[str, Any]:
        return {"name": name, "host": "127.0.0.1", "port": free_port(), "outlets": outlets,
                "outlet_kw": outlet_kw, **kw}  # fmt: skip

    data: dict[str, Any] = {
        "site": {"name": "it", "poi_limit_kw": 30000, "aux_kw": 1000, "margin_kw": 500},
        "mqtt": {"host": mqtt.host, "port": mqtt.port, "client_id": mqtt.client_id,
                 "topic_prefix": mqtt.topic_prefix, "keepalive_s": 5},
        "feeds": {"dispatch_topic": f"{mqtt.topic_prefix}-qse/dispatch",
                  "price_topic": f"{mqtt.topic_prefix}-ercot/prices/#"},
        "economics": {"min_run_s": 0, "min_curtail_s": 0, "hysteresis_usd_per_mwh": 10},
        "control": {"tick_s": 0.2, "confirm_timeout_s": 1.0, "ramp_up_kw_per_s": 100000,
                    "state_dir": "/tmp"},
        "dispatch": {"frequency_reset_s": 1},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "meters": [
            {"name": "poi", "role": "site", "host": "127.0.0.1", "port": free_port()},
            {"name": "gpu-a", "role": "gpu", "host": "127.0.0.1", "port": free_port()},
        ],
        "gpu_tenants": [{"name": "tenant-a", "firm_kw": 10000, "meters": ["gpu-a"],
                         "pdus": ["pdu-gpu"]}],
        "pools": [
            {"name": "a1", "driver": "mqtt", "max_kw": 3000, "efficiency_j_per_th": 17.0,
             "pdus": ["pdu-a1"]},
            {"name": "a2", "driver": "mqtt", "max_kw": 3000, "efficiency_j_per_th": 22.0,
             "pdus": ["pdu-a2"], "ufr": True},
            {"name": "a3", "driver": "mqtt", "max_kw": 3000, "efficiency_j_per_th": 30.0,
             "pdus": ["pdu-a3"]},
            {"name": "plc1", "driver": "modbus", "max_kw": 2000, "efficiency_j_per_th": 25.0,
             "host": "127.0.0.1", "port": free_port(), "unit_id": 1},
            {"name": "px", "driver": "pdu", "max_kw": 240, "efficiency_j_per_th": 40.0,
             "pdus": ["pdu-px"]},
        ],
        "pdus": [pdu("pdu-a1"), pdu("pdu-a2"), pdu("pdu-a3"), pdu("pdu-px", 24, 10.0),
                 pdu("pdu-gpu", 24, 60.0, protected=True)],
    }  # fmt: skip
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def write_config(data: dict[str, Any], path: Path) -> Config:
    config = Config.model_validate(data)
    assert not check_site(config)
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password")
    path.write_text(render_toml(dumped))
    return config


def sced(price: float, at: float | None = None, point: str = "HB_WEST") -> str:
    """One NP6-788-CD record stamped `at` (default now), Central prevailing time."""
    stamp = time.time() if at is None else at
    local = time.strftime("%Y-%m-%dT%H:%M:%S", _central(stamp))
    return json.dumps({"SCEDTimestamp": local, "repeatHourFlag": False,
                       "settlementPoint": point, "LMP": price})  # fmt: skip


def _central(epoch: float) -> time.struct_time:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).astimezone(CENTRAL).timetuple()


def iso_now(offset_s: float = 0.0) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat()


@dataclass
class LiveSite:
    """What a test drives: the config, the simulated devices, the daemon and a probe."""

    config: Config
    sim: SimSite
    proc: subprocess.Popen[bytes] | None  # the current daemon process, None before spawn()
    probe: MqttProbe
    log_path: Path
    config_path: Path
    notify: NotifyListener | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    spawned_at: float = 0.0  # time.monotonic() of the last spawn

    @property
    def prefix(self) -> str:
        return self.config.mqtt.topic_prefix

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, "the daemon was never started"
        return self.proc

    async def price(self, usd_per_mwh: float, *, retain: bool = False) -> None:
        await self.probe.publish(f"{self.prefix}-ercot/prices/rt", sced(usd_per_mwh), retain=retain)

    async def dispatch(self, doc: dict[str, Any]) -> None:
        await self.probe.publish(self.config.feeds.dispatch_topic, json.dumps(doc))

    async def send_override(self, doc: dict[str, Any]) -> None:
        await self.probe.publish(f"{self.prefix}/override/set", json.dumps(doc))

    async def plan(self, predicate: Any, timeout_s: float = 5.0, since: int = 0) -> Any:
        return await self.probe.wait_json(f"{self.prefix}/plan", predicate, timeout_s, since)

    async def ack(self, msg_id: str, status: str, timeout_s: float = 5.0, since: int = 0) -> Any:
        return await self.probe.wait_json(
            f"{self.prefix}/dispatch/ack",
            lambda d: d["id"] == msg_id and d["status"] == status,
            timeout_s,
            since,
        )

    def acks(self, msg_id: str, since: int = 0) -> list[dict[str, Any]]:
        docs = [m.json() for m in self.probe.on(f"{self.prefix}/dispatch/ack", since)]
        return [d for d in docs if d.get("id") == msg_id]

    def cmds(self, pool: str, since: int = 0) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, cmd) of every cmd published for `pool` since index `since`."""
        topic = f"{self.prefix}/pools/{pool}/cmd"
        return [(m.at, m.json()) for m in self.probe.on(topic, since) if m.payload]

    def targets(self, plan: dict[str, Any]) -> dict[str, float]:
        return {name: p["target_kw"] for name, p in plan["pools"].items()}

    def protected_writes(self) -> int:
        return sum(sum(self.sim.pdus[p.name].coil_writes) for p in self.config.pdus if p.protected)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def last(self, topic: str) -> Any:
        """The latest document seen on `topic` (retained topics: the broker's current one)."""
        seen = [m for m in self.probe.on(topic) if m.payload]
        assert seen, f"nothing seen on {topic}"
        return seen[-1].json()

    async def wait_metrics(self, timeout_s: float = 15.0) -> float:
        """Wait until the daemon's metrics endpoint answers (the process is up); its time."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.metrics()
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no metrics endpoint:\n{self.log()[-4000:]}") from None
                await asyncio.sleep(0.05)
            else:
                return time.monotonic()

    async def wait_metric(
        self, name: str, predicate: Callable[[float], bool], timeout_s: float = 5.0, **labels: str
    ) -> MetricsView:
        """Scrape until the series (summed over `labels`' matches) passes `predicate`."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = await self.metrics()
            value = view.get(name, float("nan"), **labels)
            if predicate(value):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} is {value} after {timeout_s:g} s")
            await asyncio.sleep(0.1)

    async def metrics(self) -> MetricsView:
        def scrape() -> str:
            url = f"http://{self.config.metrics.listen}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        return MetricsView(await asyncio.to_thread(scrape))

    # -- the daemon's lifecycle --------------------------------------------------------------

    def spawn(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.spawned_at = time.monotonic()
        self.proc = spawn_daemon(self.config_path, self.log_path, self.env)

    async def wait_online(self, since: int = 0, timeout_s: float = 15.0) -> None:
        try:
            await self.probe.wait_json(
                f"{self.prefix}/status", lambda d: d["state"] == "online", timeout_s, since
            )
        except AssertionError:
            raise AssertionError(f"daemon never came online:\n{self.log()[-4000:]}") from None

    async def kill9(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown action, no goodbye. Returns
        once the process is gone and the broker has published its will (offline)."""
        mark = self.probe.mark()
        process = self.process
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 5.0)
        await self.probe.wait_json(
            f"{self.prefix}/status", lambda d: d["state"] == "offline", 5.0, mark
        )

    async def restart(self, *, wait_online: bool = True) -> None:
        """Start the daemon again on the same config and state dir; the devices keep running."""
        mark = self.probe.mark()
        self.spawn()
        if wait_online:
            await self.wait_online(since=mark)

    def reload(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def terminate(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait for the exit code, keeping this loop (the devices) serving."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"curtaild ignored SIGTERM for {timeout_s} s:\n{self.log()}")
            await asyncio.sleep(0.02)
        return process.returncode


def spawn_daemon(
    config_path: Path, log_path: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`curtaild run`; NOTIFY_* and CURTAILD_* of this process are not passed on, `extra_env` is
    (NOTIFY_SOCKET, WATCHDOG_USEC: the test opts in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURTAILD_", "NOTIFY_"))}
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    env.update(extra_env or {})
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip


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
        stack.push_async_callback(_stop_daemon, site)
        for agent in sim.agents.values():  # the daemon starts with the agents' states retained
            if agent.alive:
                await probe.wait_json(agent.state_topic, timeout_s=10.0)
        if before_spawn is not None:
            await before_spawn(site)
        site.spawn()
        if wait_online:
            await site.wait_online()
        yield site


async def _stop_daemon(site: LiveSite) -> None:
    process = site.proc
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    for _ in range(500):  # async wait: the simulated devices share this loop
        if process.poll() is not None:
            return
        await asyncio.sleep(0.02)
    process.kill()
    process.wait()


async def _stop_sim(sim: SimSite) -> None:
    await sim.stop()
    await asyncio.sleep(0)
