"""The real `curtaild agent` as a child process, with its AGENT.toml written for a test."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.config import MqttConfig
from controller.sim.configs import free_port


def agent_toml(
    mqtt: MqttConfig,
    state_dir: Path,
    pools: dict[str, Sequence[str]],
    *,
    poll_s: float = 0.5,
    miner_timeout_s: float = 1.0,
    metrics_port: int | None = None,
) -> str:
    lines = [
        "[mqtt]",
        f'host = "{mqtt.host}"',
        f"port = {mqtt.port}",
        f'client_id = "{mqtt.client_id}"',
        "keepalive_s = 5",
        "[agent]",
        f'topic_prefix = "{mqtt.topic_prefix}"',
        f"poll_s = {poll_s}",
        f"miner_timeout_s = {miner_timeout_s}",
        f'state_dir = "{state_dir}"',
        f'metrics_listen = "127.0.0.1:{metrics_port or free_port()}"',
    ]
    for name, miners in pools.items():
        quoted = ", ".join(f'"{ip}"' for ip in miners)
        lines += ["[[agent.pools]]", f'name = "{name}"', f"miners = [{quoted}]"]
    return "\n".join(lines) + "\n"


class AgentProcess:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = config_path.with_suffix(".log")

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "agent", "--config", str(self.config_path),
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """`kill -9`: no goodbye, nothing flushed."""
        if self.alive and self.proc is not None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""
