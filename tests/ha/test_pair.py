"""Two real daemons on a real etcd, mosquitto and the simulated site: an active/standby pair.

Node a starts first and leads; node b has the same config but its own node name, broker client
id, state directory and metrics port, and stands by. The site is the integration site
(tests/integration/site.py); lease_ttl_s 2 s, fence_margin_s 0.8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.config import MqttConfig
from controller.config_render import render_toml
from controller.sim.configs import free_port
from tests.ha.conftest import MakeCluster
from tests.integration.documents import ecrs, recall
from tests.integration.faults import MetricsView, Sampler, at_most
from tests.integration.live import LiveSite, spawn_daemon
from tests.integration.site import FLEET_KW, live_site
from tests.support import eventually

TTL_S = 2


@dataclass
class Pair:
    site: LiveSite  # node a, and the devices, the probe
    b: subprocess.Popen[bytes]
    b_log: Path
    b_metrics: str

    def epochs(self, since: int = 0) -> set[int]:
        """The epochs of the pool cmds published since `since` (None: a cmd without one)."""
        found: set[int] = set()
        for msg in self.site.probe.on(f"{self.site.prefix}/pools/+/cmd", since):
            doc = msg.json()
            assert "epoch" in doc, f"a pair's cmd without an epoch: {doc}"
            found.add(doc["epoch"])
        return found

    async def b_metric(self, name: str) -> float | None:
        return await asyncio.to_thread(_metric_now, self, name)


def _node_b_config(site: LiveSite, tmp_path: Path) -> tuple[Path, str]:
    """Node a's config with node b's own name, client id, state dir and metrics port."""
    dumped: dict[str, Any] = site.config.model_dump(mode="python")
    dumped["mqtt"].pop("password")
    dumped["mqtt"]["client_id"] += "-b"
    dumped["ha"]["node_name"] = "b"
    dumped["control"]["state_dir"] = str(tmp_path / "state-b")
    listen = f"127.0.0.1:{free_port()}"
    dumped["metrics"]["listen"] = listen
    path = tmp_path / "curtaild-b.toml"
    path.write_text(render_toml(dumped))
    return path, listen


@contextlib.asynccontextmanager
async def pair(
    mqtt_cfg: MqttConfig, tmp_path: Path, make_cluster: MakeCluster
) -> AsyncIterator[Pair]:
    cluster = make_cluster(1)
    ha = {"enabled": True, "node_name": "a", "etcd_endpoints": cluster.endpoints,
          "lease_ttl_s": TTL_S, "fence_margin_s": 0.8, "etcd_timeout_s": 0.3}  # fmt: skip
    async with live_site(mqtt_cfg, tmp_path, ha=ha) as site:
        path, listen = _node_b_config(site, tmp_path)
        b_log = tmp_path / "curtaild-b.log"
        b = spawn_daemon(path, b_log)
        p = Pair(site, b, b_log, listen)
        try:
            await eventually(lambda: _metric_now(p, "curtaild_ha_leader") == 0.0, 10)
            yield p
        finally:
            if b.poll() is None:
                b.send_signal(signal.SIGTERM)
                for _ in range(500):
                    if b.poll() is not None:
                        break
                    await asyncio.sleep(0.02)
                else:
                    b.kill()
            process = site.proc
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)


@pytest.fixture
async def running(
    mqtt_cfg: MqttConfig, tmp_path: Path, make_cluster: MakeCluster
) -> AsyncIterator[Pair]:
    """A pair, node a leading, every pool running."""
    async with pair(mqtt_cfg, tmp_path, make_cluster) as p:
        await p.site.run_every_pool(FLEET_KW)
        yield p


def _metric_now(p: Pair, name: str) -> float | None:
    """Node b's gauge: -1 before it is set, None while b does not serve (starting)."""
    try:
        with urllib.request.urlopen(f"http://{p.b_metrics}/metrics", timeout=1) as reply:
            return MetricsView(reply.read().decode()).get(name, -1.0, node="b")
    except OSError:
        return None


async def test_kill9_of_the_leader_hands_the_deployment_to_the_standby(running: Pair) -> None:
    p, site = running, running.site
    mark = site.probe.mark()
    await site.dispatch(ecrs("E1", 5.0))
    cap_kw = (await site.ack("E1", "accepted", since=mark))["target_kw"]
    complied = await site.ack("E1", "complied", since=mark)
    # The standby sends nothing: the status is the leader's, every cmd the leader's epoch.
    (first,) = p.epochs()
    status = site.last(f"{site.prefix}/status")
    assert (status["state"], status["node"], status["epoch"]) == ("online", "a", first)
    assert (complied["node"], complied["epoch"]) == ("a", first)
    async with Sampler(site.sim.mining_kw) as mining:
        killed_at = time.monotonic()
        await site.kill9()
        taken = site.probe.mark()
        await site.wait_online(since=taken, timeout_s=15.0)
        online_s = time.monotonic() - killed_at
        await site.price(-25.0)  # every pool would run at this price (I5: not now)
        await asyncio.sleep(2.0)
    _, peak_kw = mining.peak()
    assert peak_kw <= at_most(cap_kw), f"mining {peak_kw:.0f} kW over the ECRS cap {cap_kw}"
    assert online_s < 3 * TTL_S + 5, online_s
    # b continues from the replicated state: E1 in force, republished under its epoch.
    state = site.last(f"{site.prefix}/dispatch/state")
    assert [o["id"] for o in state["obligations"]] == ["E1"], state
    assert await p.b_metric("curtaild_ha_leader") == 1.0
    await site.dispatch(recall("E1"))
    await eventually(lambda: site.sim.mining_kw() == pytest.approx(FLEET_KW), 5)
    (second,) = p.epochs(since=taken)
    assert second > first
    status = site.last(f"{site.prefix}/status")
    assert (status["state"], status["node"], status["epoch"]) == ("online", "b", second)
    for topic in ("plan", "dispatch/state", "override/state"):
        doc = site.last(f"{site.prefix}/{topic}")
        assert (doc["node"], doc["epoch"]) == ("b", second), topic
    events = [m.json() for m in site.probe.on(f"{site.prefix}/events")]
    leaders = [(e["node"], e["epoch"], e["state_from"]) for e in events if e["event"] == "leader"]
    assert leaders == [("a", first, "own_store"), ("b", second, "replica")], leaders
    # a3 was cut by a and raised by b; a1 and a2 ran throughout, never commanded by either.
    epochs = {name: agent.epoch for name, agent in site.sim.agents.items()}
    assert epochs == {"a1": 0, "a2": 0, "a3": second}, epochs


async def test_a_leader_paused_past_its_deadline_wakes_fenced_and_exits(running: Pair) -> None:
    p, site = running, running.site
    await site.price(100.0)  # a curtails some pools: cmds under its epoch
    await eventually(lambda: site.sim.mining_kw() < FLEET_KW, 5)
    (first,) = p.epochs()
    await site.run_every_pool(FLEET_KW)
    a = site.process
    a.send_signal(signal.SIGSTOP)  # a VM frozen, a stopped container: it believes it leads
    taken = site.probe.mark()
    await site.wait_online(since=taken, timeout_s=15.0)  # b, once a's lease expired
    await site.price(200.0)  # b curtails: a's view of the site is now wrong
    await eventually(lambda: site.sim.mining_kw() < FLEET_KW, 5)
    second = max(p.epochs(since=taken))
    assert second > first
    woke = site.probe.mark()
    a.send_signal(signal.SIGCONT)
    code = await asyncio.to_thread(a.wait, 10.0)
    assert code == 3, site.log()[-3000:]  # deposed: systemd starts it again as a standby
    assert "no longer the leader" in site.log()
    # Nothing a sent after waking reached the broker under its old epoch.
    assert p.epochs(since=woke) <= {second}
    await asyncio.sleep(1.0)
    status = site.last(f"{site.prefix}/status")
    assert (status["state"], status["node"]) == ("online", "b")
    assert all(agent.commands_fenced == 0 for agent in site.sim.agents.values())


async def test_a_clean_stop_hands_over_at_once(running: Pair) -> None:
    p, site = running, running.site
    stopped = site.probe.mark()
    started = time.monotonic()
    assert await site.terminate() == 0  # SIGTERM: shutdown_action, then the lease revoked
    await eventually(lambda: _metric_now(p, "curtaild_ha_leader") == 1.0, 3 * TTL_S)
    await site.wait_online(since=stopped, timeout_s=10.0)
    # b campaigns every TTL/4: it leads well before a's lease would have expired.
    assert time.monotonic() - started < TTL_S + 2.0
    await asyncio.sleep(1.0)
    status = site.last(f"{site.prefix}/status")
    assert (status["state"], status["node"]) == ("online", "b")
