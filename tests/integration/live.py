"""The real daemon as a test drives it: `curtaild run` in its own process, a probe on its
topics, its metrics endpoint, and its lifecycle (kill -9, restart, SIGHUP, SIGTERM) while the
simulated devices keep running in the test's own event loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.sim.site import SimSite
from tests.integration.documents import sced
from tests.integration.faults import MetricsView, NotifyListener
from tests.support import MqttProbe, eventually

ROOT = Path(__file__).resolve().parents[2]


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

    async def run_every_pool(self, fleet_kw: float, timeout_s: float = 5.0) -> None:
        """A cheap price, then wait until the simulated site draws `fleet_kw` of mining."""
        await self.price(20.0)
        await eventually(lambda: abs(self.sim.mining_kw() - fleet_kw) <= 1e-6 * fleet_kw, timeout_s)

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
            seen = [m.payload[:60] for m in self.probe.on(f"{self.prefix}/status", since)]
            code = self.process.poll()
            raise AssertionError(
                f"daemon never came online in {timeout_s:g} s (exit code {code}, status seen "
                f"{seen}):\n{self.log()[-4000:]}"
            ) from None

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


async def cli(*args: str) -> tuple[int, str, str]:
    """Run the real CLI without blocking this loop (the simulated devices live on it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


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


async def stop_daemon(site: LiveSite) -> None:
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
