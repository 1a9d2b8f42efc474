"""Debian's prometheus and promtool as the tests drive them: found or a clear failure (never a
skip), the project's rules, and a real Prometheus server on a free loopback port.

`make test` installs the Debian package `prometheus` (which ships promtool) when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from controller.sim.configs import free_port
from tests.integration.live import ROOT

RULES = ROOT / "deploy" / "prometheus" / "curtaild.rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "curtaild.rules.test.yml"
PROMETHEUS_MISSING = (
    "{tool} is not installed: run `sudo apt-get install prometheus` (the Debian package ships "
    "prometheus and promtool; make test installs it when run as root)"
)


def find_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; fails the test (not skips) when it is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(PROMETHEUS_MISSING.format(tool=name), pytrace=False)
    return found


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("promtool"), *args], input=None if stdin is None else stdin.decode(),
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


def rules_with_short_for(for_s: float) -> str:
    """The shipped rules with every `for:` cut to `for_s`: the shipped ones (30 s to 5 min) are
    for a real site; a test waits seconds. Nothing else in the rules changes."""
    return re.sub(r"(?m)^(\s+)for: \S+$", rf"\g<1>for: {for_s:g}s", RULES.read_text())


class PrometheusServer:
    """`prometheus` scraping `target` every second and evaluating the rules every second, with
    its storage in a temp dir, on 127.0.0.1 and a free port. A context manager: stopped after."""

    def __init__(self, target: str, *, for_s: float = 1.0) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="curtaild-prometheus-"))
        (self.dir / "curtaild.rules.yml").write_text(rules_with_short_for(for_s))
        (self.dir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}\n"
            "rule_files: [curtaild.rules.yml]\n"
            "scrape_configs:\n"
            f"  - job_name: curtaild\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = self.dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        binary = find_tool("prometheus")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
            )  # fmt: skip
        deadline = time.monotonic() + 15.0
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError(f"prometheus did not start:\n{self.log_text()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, state: str = "firing") -> list[dict[str, str]]:
        """The labels of every alert in `state` (firing or pending)."""
        return [a["labels"] for a in self.api("alerts")["alerts"] if a["state"] == state]

    def rule_queries(self) -> list[str]:
        """Every rule's expression as this Prometheus parsed it."""
        return [r["query"] for g in self.api("rules")["groups"] for r in g["rules"]]
