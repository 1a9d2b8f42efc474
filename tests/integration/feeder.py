"""`curtaild feed-ercot` as a test drives it: the real command in its own process against the
fake ERCOT API served in the test's loop, its account in the environment (never in the file)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from controller.sim.configs import free_port
from controller.sim.ercot_api import FakeErcotApi, RunningFake
from tests.integration.live import ROOT

# Distinctive, so a test can tell that neither ever reaches the feeder's log.
PASSWORD = "pw-5d1f9c-secret"
SUBSCRIPTION_KEY = "key-8e27ab-secret"
SECRETS_ENV = {"CURTAILD_ERCOT_API__PASSWORD": PASSWORD,
               "CURTAILD_ERCOT_API__SUBSCRIPTION_KEY": SUBSCRIPTION_KEY}  # fmt: skip


def ercot_section(fake: RunningFake, prefix: str, **overrides: Any) -> dict[str, Any]:
    """The [ercot_api] section for a site whose daemon reads `{prefix}-ercot/prices/#`."""
    return {"base_url": fake.base_url, "token_url": fake.token_url,
            "username": fake.api.username, "publish_topic": f"{prefix}-ercot/prices",
            "metrics_listen": f"127.0.0.1:{free_port()}", "poll_s": 0.3, **overrides}  # fmt: skip


class Feeder:
    """The feeder process: start, kill -9, stop; its output goes to `log_path`."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CURTAILD_", "NOTIFY_"))}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller", "feed-ercot", "--config",
                 str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env | SECRETS_ENV, cwd=ROOT,
            )  # fmt: skip

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(250):  # async wait: the fake API shares this loop
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.02)
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@asynccontextmanager
async def fake_api(**fields: Any) -> AsyncIterator[RunningFake]:
    """The fake with two hours of history for three settlement points."""
    api = FakeErcotApi(password=PASSWORD, subscription_key=SUBSCRIPTION_KEY, **fields)
    api.store.seed(time.time(), hours=2.0, post_delay_s=60.0)
    async with RunningFake(api) as running:
        yield running
