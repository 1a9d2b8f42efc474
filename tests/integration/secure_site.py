"""The integration site of tests/integration/site.py behind a secured broker.

mosquitto with TLS listeners, `allow_anonymous false`, a password file and the ACL that
deploy/mosquitto/render_acl.py renders from the test's own curtaild.toml (the script a site
operator runs); the real daemon logs in as `curtaild` over TLS, the simulated pool agents as the
agent account of their row, and each other party gets an `MqttProbe` logged in as itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from controller.config import Config, MqttConfig
from controller.sim.configs import free_port
from controller.sim.site import SimSite
from tests.integration.site import ROOT, site_data, spawn_daemon, write_config
from tests.support import BrokerTls, MosquittoBroker, MqttProbe, ProbeTls
from tests.tls import Pki

RENDER_ACL = ROOT / "deploy" / "mosquitto" / "render_acl.py"

# The parties of CONTRACT section 2 and their accounts. The simulated agents run all three mqtt
# pools of the site on one connection (an agent per row, CONTRACT 2.7); `pool-a1` is the agent
# of pool a1 alone, the one that tries to speak for a2.
CONTROLLER, FEED, QSE, OPERATOR = "curtaild", "ercot-feed", "qse-gateway", "op-jdoe"
ROW_AGENT, A1_AGENT = "agents-row-a", "pool-a1"
AGENTS = {ROW_AGENT: ["a1", "a2", "a3"], A1_AGENT: ["a1"]}
PASSWORDS = {
    name: secrets.token_urlsafe(12)
    for name in (CONTROLLER, FEED, QSE, OPERATOR, ROW_AGENT, A1_AGENT)
}


def render_acl(config_path: Path) -> str:
    """The ACL for the site at `config_path`, by the shipped script, as an operator runs it."""
    agents = [arg for user, pools in AGENTS.items()
              for arg in ("--agent", f"{user}={','.join(pools)}")]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(RENDER_ACL), "--config", str(config_path), *agents,
         "--operator", OPERATOR],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def secure_config(
    tmp_path: Path,
    tls_port: int,
    ca_file: Path,
    *,
    user: str = CONTROLLER,
    prefix: str | None = None,
    **mqtt: Any,
) -> tuple[Config, Path]:
    """The integration site's config at `tmp_path/<user>.toml`: `user` logs in over TLS.

    The password goes to a file beside it (`password_file`), as on a site; `mqtt` adds keys.
    """
    password_file = tmp_path / f"{user}.password"
    password_file.write_text(PASSWORDS[user] + "\n")
    token = secrets.token_hex(4)
    base = MqttConfig(host="127.0.0.1", port=tls_port, client_id=f"sec-{token}",
                      topic_prefix=prefix or f"sec/{token}", keepalive_s=5)  # fmt: skip
    data = site_data(base, control={"state_dir": str(tmp_path)})
    data["mqtt"] |= {"username": user, "password_file": str(password_file),
                     "tls_ca_file": str(ca_file), **mqtt}  # fmt: skip
    path = tmp_path / f"{user}.toml"
    return write_config(data, path), path


def start_broker(binary: str, pki: Pki, tls_port: int, acl: str) -> MosquittoBroker:
    tls = BrokerTls(pki.ca.cert, pki.broker.cert, pki.broker.key)
    broker = MosquittoBroker(binary, users=PASSWORDS, tls=tls, tls_port=tls_port, acl=acl)
    try:
        broker.start()
    except RuntimeError:
        broker.cleanup()
        raise
    return broker


def party(
    broker: MosquittoBroker, pki: Pki, user: str, topics: list[str] | None = None
) -> MqttProbe:
    """A client logged in as `user` over TLS (enter it with `async with`)."""
    assert broker.tls_port is not None
    return MqttProbe(broker.host, broker.tls_port, topics or [], f"{user}-{secrets.token_hex(3)}",
                     login=(user, PASSWORDS[user]), tls=ProbeTls(pki.ca.cert))  # fmt: skip


@dataclass
class SecureSite:
    config: Config
    config_path: Path
    broker: MosquittoBroker
    pki: Pki
    sim: SimSite
    process: subprocess.Popen[bytes]
    log_path: Path
    operator: MqttProbe  # op-jdoe: everything under the prefix
    witness: MqttProbe  # logged in as the controller, subscribed to what the daemon reads

    @property
    def prefix(self) -> str:
        return self.config.mqtt.topic_prefix

    def party(self, user: str, topics: list[str] | None = None) -> MqttProbe:
        return party(self.broker, self.pki, user, topics)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def secure_site(binary: str, pki: Pki, tmp_path: Path) -> AsyncIterator[SecureSite]:
    """Broker, devices, daemon (online over TLS) and the operator's and witness's probes."""
    tls_port = free_port()
    config, config_path = secure_config(tmp_path, tls_port, pki.ca.cert)
    broker = start_broker(binary, pki, tls_port, render_acl(config_path))
    agents_login = MqttConfig(host=broker.host, port=tls_port, client_id=f"{ROW_AGENT}-sim",
                              topic_prefix=config.mqtt.topic_prefix, keepalive_s=5,
                              username=ROW_AGENT, password=SecretStr(PASSWORDS[ROW_AGENT]),
                              tls_ca_file=str(pki.ca.cert))  # fmt: skip
    sim = SimSite(config, mqtt=agents_login, agent_delay_s=0.05, plc_delay_s=0.05)
    process: subprocess.Popen[bytes] | None = None
    log_path = tmp_path / "curtaild.log"
    try:
        await sim.start()
        prefix, feeds = config.mqtt.topic_prefix, config.feeds
        async with (
            party(broker, pki, OPERATOR, [f"{prefix}/#"]) as operator,
            party(broker, pki, CONTROLLER, [feeds.price_topic, feeds.dispatch_topic,
                                            f"{prefix}/#"]) as witness,
        ):  # fmt: skip
            process = spawn_daemon(config_path, log_path)
            site = SecureSite(config, config_path, broker, pki, sim, process, log_path,
                              operator, witness)  # fmt: skip
            try:
                await operator.wait_json(f"{prefix}/status", lambda d: d["state"] == "online", 15)
            except AssertionError:
                raise AssertionError(f"daemon never came online:\n{site.log()}") from None
            yield site
    finally:
        if process is not None:
            await stop_daemon(process)
        await sim.stop()
        broker.cleanup()


async def scrape(site: SecureSite) -> str:
    def get() -> str:
        url = f"http://{site.config.metrics.listen}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    return await asyncio.to_thread(get)


def tls_session_error(port: int, ca_file: Path) -> str:
    """The TLS error a client without a certificate meets at `port` ("" when none)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        try:
            # TLS 1.3 finishes the client's handshake first; the refusal is the next record.
            tls.recv(1)
        except ssl.SSLError as exc:
            return str(exc)
    return ""


async def stop_daemon(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM, waiting without blocking the loop (the simulated devices live on it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        for _ in range(int(timeout_s / 0.02)):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.02)
    if process.poll() is None:
        process.kill()
        process.wait()
    return process.returncode


def rejected_total(metrics: str) -> float:
    """Sum of every `curtaild_messages_rejected_total` series (0 when none exists yet)."""
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("curtaild_messages_rejected_total{"))  # fmt: skip


def sample(metrics: str, series: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in the exposition")


def device_writes(sim: SimSite) -> Mapping[str, object]:
    """Every write any simulated device has seen: equal before and after means nothing moved."""
    return {
        "coils": {n: list(p.coil_writes) for n, p in sim.pdus.items()},
        "plc": {n: p.setpoint_writes for n, p in sim.plcs.items()},
        "agents": {n: (a.commands_received, a.applied_seq) for n, a in sim.agents.items()},
    }
