"""A small real site for integration tests: simulated devices in the test process, the real
`curtaild run` as a subprocess, mosquitto as the broker.

Pools (hashprice 50, fee 0.02): a1 17 J/TH (breakeven 120.1 $/MWh), a2 22 (92.8, ufr),
a3 30 (68.1), plc1 25 (81.7, PLC), px 40 (51.0, outlets only). POI 30 MW, aux 1 MW, margin 0.5
MW, one GPU tenant of 10 MW firm on a protected PDU: envelope 18.5 MW, fleet 11.24 MW.
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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controller.config import Config, MqttConfig
from controller.config_checks import check_site
from controller.config_render import render_toml
from controller.sim.site import SimSite
from tests.support import MqttProbe, free_port

CENTRAL = ZoneInfo("America/Chicago")
ROOT = Path(__file__).resolve().parents[2]


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
    process: subprocess.Popen[bytes]
    probe: MqttProbe
    log_path: Path
    config_path: Path

    @property
    def prefix(self) -> str:
        return self.config.mqtt.topic_prefix

    async def price(self, usd_per_mwh: float) -> None:
        await self.probe.publish(f"{self.prefix}-ercot/prices/rt", sced(usd_per_mwh))

    async def dispatch(self, doc: dict[str, Any]) -> None:
        await self.probe.publish(self.config.feeds.dispatch_topic, json.dumps(doc))

    async def plan(self, predicate: Any, timeout_s: float = 5.0, since: int = 0) -> Any:
        return await self.probe.wait_json(f"{self.prefix}/plan", predicate, timeout_s, since)

    def targets(self, plan: dict[str, Any]) -> dict[str, float]:
        return {name: p["target_kw"] for name, p in plan["pools"].items()}

    def protected_writes(self) -> int:
        return sum(sum(self.sim.pdus[p.name].coil_writes) for p in self.config.pdus if p.protected)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def terminate(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait for the exit code, keeping this loop (the devices) serving."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"curtaild ignored SIGTERM for {timeout_s} s:\n{self.log()}")
            await asyncio.sleep(0.02)
        return self.process.returncode


def spawn_daemon(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURTAILD_", "NOTIFY_"))}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def live_site(
    mqtt: MqttConfig, tmp_path: Path, *, stuck: frozenset[str] = frozenset(), **sections: Any
) -> AsyncIterator[LiveSite]:
    """Devices up, daemon started and online, a probe on the site's topics; all stopped after."""
    config_path = tmp_path / "curtaild.toml"
    config = write_config(site_data(mqtt, **sections), config_path)
    sim = SimSite(config, mqtt=mqtt, agent_delay_s=0.05, stuck_pools=stuck, plc_delay_s=0.05)
    await sim.start()
    log_path = tmp_path / "curtaild.log"
    process = None
    try:
        async with MqttProbe(mqtt.host, mqtt.port, [f"{config.mqtt.topic_prefix}/#"]) as probe:
            process = spawn_daemon(config_path, log_path)
            site = LiveSite(config, sim, process, probe, log_path, config_path)
            try:
                await probe.wait_json(f"{config.mqtt.topic_prefix}/status",
                                      lambda d: d["state"] == "online", 15.0)  # fmt: skip
            except AssertionError:
                raise AssertionError(f"daemon never came online:\n{site.log()}") from None
            yield site
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            for _ in range(500):  # async wait: the simulated devices share this loop
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait()
        await sim.stop()
        await asyncio.sleep(0)
