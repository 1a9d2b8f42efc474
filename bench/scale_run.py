"""One size of the scale benchmark: mosquitto, the device processes, the daemon (`curtaild run`,
its own process), the floor process, then the events; everything stopped afterwards.

Process map (two cores, shared): the daemon; mosquitto; two PDU shard processes; one process
with the agents and meters; the floor (idle while the daemon works); this process (the
measuring MQTT client, idle while it listens). A scraper process is added for the scrape phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiomqtt

from bench.bench_reaction import start_mosquitto
from bench.scale_devices import agents_main, pdu_shard_main, pdu_specs, raise_open_files
from bench.scale_events import Events, Probe, Sample
from bench.scale_floor import floor_main
from bench.scale_site import Size, scale_config
from controller.config import Config
from controller.config_render import render_toml
from controller.sim.configs import build_config, free_port

SHARDS = 2
STARTUP_TIMEOUT_S = 300.0
CTX = mp.get_context("spawn")


@dataclass(slots=True)
class SizeResult:
    size: Size
    samples: list[Sample] = field(default_factory=list)
    scraped: list[Sample] = field(default_factory=list)  # ECRS while /metrics is scraped
    scrapes: int = 0
    scrape_ms: float = float("nan")
    rss_mb: float = float("nan")
    hwm_mb: float = float("nan")
    startup_s: float = float("nan")
    load_at_start: float = float("nan")  # 1-minute load average (a shared machine)


def memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak) of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def scraper_main(conn: Connection, url: str, interval_s: float) -> None:
    """GET /metrics every `interval_s` until told to stop; answers (count, mean ms)."""
    count, total_s = 0, 0.0
    while not conn.poll(interval_s):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as reply:
            reply.read()
        total_s += time.perf_counter() - started
        count += 1
    conn.send((count, total_s / max(1, count) * 1000))


class Child:
    """A spawned helper process and its pipe."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.conn, child = CTX.Pipe()
        self.proc: BaseProcess = CTX.Process(target=target, args=(child, *args), daemon=True)
        self.proc.start()

    async def ready(self) -> None:
        if await asyncio.to_thread(self.conn.recv) != "ready":
            raise RuntimeError(f"{self.proc.name} did not start")

    async def ask(self, request: tuple[Any, ...]) -> Any:
        def exchange() -> Any:
            self.conn.send(request)
            return self.conn.recv()

        return await asyncio.to_thread(exchange)

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(("stop",))
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the daemon (collapsed stacks, text) while the events run."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [binary, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    return subprocess.Popen(
        [*command, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_profiler(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


async def run_size(
    size: Size,
    events: int,
    scrape_events: int,
    scrape_interval_s: float,
    keep: Path | None,
    profile: Path | None = None,
) -> SizeResult:
    raise_open_files()
    result = SizeResult(size, load_at_start=os.getloadavg()[0])
    workdir = Path(tempfile.mkdtemp(prefix="curtaild-scale-"))
    broker_port = free_port()
    config = scale_config(size, broker_port, 0, str(workdir))
    # A whole site's cmds in one burst: the default queue of 1000 would drop some.
    broker = start_mosquitto(broker_port, workdir, "max_queued_messages 100000\n")
    specs = pdu_specs(config)
    outlet_kw = CTX.Array("d", SHARDS, lock=False)
    children = [Child(pdu_shard_main, specs[i::SHARDS], outlet_kw, i) for i in range(SHARDS)] + [
        Child(agents_main, config, outlet_kw)
    ]
    shards, agents = children[:SHARDS], children[SHARDS]
    daemon: subprocess.Popen[bytes] | None = None
    log_path = workdir / "daemon.log"
    try:
        for child in children:
            await child.ready()
        ports: dict[str, int] = {}
        for child in children:
            ports.update(await child.ask(("ports",)))
        # Picked after the devices took theirs: a port freed earlier can go to a device's listener.
        metrics_port = next(p for p in iter(free_port, 0) if p not in ports.values())
        config = with_ports(config, ports, metrics_port)
        config_path = workdir / "curtaild.toml"
        config_path.write_text(render_toml(_file_fields(config)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "controller", "run", "--config", str(config_path)],
                env=env,
                stdout=log,
                stderr=log,
            )
        protected = {p.name for p in config.pdus if p.protected}
        writable = {s.name: ports[s.name] for s in specs if s.name not in protected}
        floor = Child(floor_main, broker_port, writable)
        children.append(floor)
        await floor.ready()
        prefix = config.mqtt.topic_prefix
        async with aiomqtt.Client("127.0.0.1", broker_port, identifier="bench-probe") as client:
            await client.subscribe(
                [(f"{prefix}/pools/+/cmd", 0), (f"{prefix}/dispatch/ack", 0), (f"{prefix}/plan", 0)]
            )
            probe = Probe(
                client, prefix, alive=lambda: daemon is not None and daemon.poll() is None
            )
            reader = asyncio.create_task(probe.read())

            async def drain() -> list[tuple[float, str, int, tuple[bool, ...]]]:
                parts = await asyncio.gather(*(s.ask(("drain",)) for s in shards))
                return sorted(w for part in parts for w in part)

            ufr = frozenset(p.name for p in config.pools if p.ufr)
            ev = Events(probe, config.feeds.dispatch_topic, ufr, drain, agents.ask, floor.ask)
            started = time.monotonic()
            await ev.price()
            await ev.settle(STARTUP_TIMEOUT_S)  # thousands of connections to open first
            result.startup_s = time.monotonic() - started
            out = None if profile is None else profile / f"daemon-{size.pdus}-{size.pools}.txt"
            profiler = None if out is None else start_profiler(daemon.pid, out)
            for n in range(events):
                await ev.price()
                kw = await ev.settle()
                result.samples.append(await ev.ecrs(f"ECRS-{n}", kw))
                result.samples.append(await ev.recall(f"ECRS-{n}"))
                kw = await ev.settle()
                result.samples.append(await ev.override(kw))
                await ev.settle()
                result.samples.append(await ev.trip())
                print(f"  {size.label}: round {n + 1}/{events}", file=sys.stderr, flush=True)
            stop_profiler(profiler)
            if scrape_events:
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                scraper = Child(scraper_main, url, scrape_interval_s)
                children.append(scraper)
                for n in range(scrape_events):
                    kw = await ev.settle()
                    result.scraped.append(await ev.ecrs(f"SCRAPED-{n}", kw))
                    await ev.recall(f"SCRAPED-{n}")
                scraper.conn.send(("stop",))
                result.scrapes, result.scrape_ms = await asyncio.to_thread(scraper.conn.recv)
            result.rss_mb, result.hwm_mb = memory_mb(daemon.pid)
            reader.cancel()
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
        for child in children:
            child.stop()
        broker.terminate()
        broker.wait(5)
        if keep is not None:
            _keep_log(log_path, keep / f"daemon-{size.pdus}-{size.pools}.log")
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _file_fields(config: Config) -> dict[str, Any]:
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password")  # never in the file (the env or a file gives it)
    return dumped


def with_ports(config: Config, ports: dict[str, int], metrics_port: int) -> Config:
    """The config with each device on the port its simulator listens on."""
    data = _file_fields(config)
    data["metrics"]["listen"] = f"127.0.0.1:{metrics_port}"
    for device in (*data["meters"], *data["pdus"]):
        device["port"] = ports[device["name"]]
    return build_config(data)


def _keep_log(log: Path, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, to)
