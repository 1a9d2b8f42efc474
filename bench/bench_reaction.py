"""ECRS reaction time on the demo site: instruction published -> pool commands -> `complied`.

The daemon runs as its own process (`curtaild run`) against mosquitto; the simulated site
(12 pools, PDUs, meters, PLCs) runs in this process; a separate MQTT client publishes each ECRS
and timestamps what comes back, as a grid partner would see it. Each round deploys an ECRS
while every pool runs, waits for `complied`, recalls it and waits for the fleet to recover.

    .venv/bin/python bench/bench_reaction.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from controller.adapters.modbus import quiet_pymodbus_logs
from controller.clock import iso
from controller.config_render import render_toml
from controller.sim.configs import free_port
from controller.sim.demo_site import demo_config
from controller.sim.site import SimSite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import write_section  # noqa: E402


def start_mosquitto(port: int, workdir: Path, extra: str = "") -> subprocess.Popen[bytes]:
    """A loopback broker for a benchmark; `extra`: more mosquitto.conf lines."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"set_tcp_nodelay true\n{extra}"
    )
    workdir.chmod(0o755)
    conf.chmod(0o644)
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(rounds: int) -> dict[str, list[float]]:
    workdir = Path(tempfile.mkdtemp(prefix="curtaild-bench-"))
    port = free_port()
    broker = start_mosquitto(port, workdir)
    config = demo_config(port, free_port(), str(workdir))
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password")
    config_path = workdir / "curtaild.toml"
    config_path.write_text(render_toml(dumped))
    site = SimSite(config)
    await site.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--config", str(config_path)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    prefix = config.mqtt.topic_prefix
    results: dict[str, list[float]] = {"first_ms": [], "last_ms": [], "complied_ms": []}
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-probe") as client:
            await client.subscribe([(f"{prefix}/pools/+/cmd", 1), (f"{prefix}/dispatch/ack", 1)])
            inbox: asyncio.Queue[tuple[float, str, dict[str, Any]]] = asyncio.Queue()

            async def read() -> None:
                async for m in client.messages:
                    doc = json.loads(m.payload) if m.payload else {}
                    await inbox.put((time.perf_counter(), m.topic.value, doc))

            reader = asyncio.create_task(read())
            price = {
                "SCEDTimestamp": "",
                "repeatHourFlag": False,
                "settlementPoint": "HB_WEST",
                "LMP": 15.0,
            }
            for n in range(rounds):
                price["SCEDTimestamp"] = time.strftime(
                    "%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 6 * 3600)
                )
                await client.publish("ercot/prices/rt", json.dumps(price), qos=1)
                while site.mining_kw() < 0.95 * sum(p.max_kw for p in config.pools) - 2000:
                    await asyncio.sleep(0.1)  # s17-a may be escalated: ~2 MW short is fine
                await asyncio.sleep(1.5)
                while not inbox.empty():
                    inbox.get_nowait()
                ecrs_id = f"BENCH-{n}"
                doc = {"id": ecrs_id, "type": "ECRS", "mw": 8.0, "notified_at": iso(time.time())}
                sent = time.perf_counter()
                await client.publish(config.feeds.dispatch_topic, json.dumps(doc), qos=1)
                cmds: list[float] = []
                complied = None
                deadline = sent + 10
                while complied is None and time.perf_counter() < deadline:
                    try:
                        at, topic, body = await asyncio.wait_for(inbox.get(), 10)
                    except TimeoutError:
                        break
                    if topic.endswith("/cmd") and body.get("reason") == f"dispatch:{ecrs_id}":
                        cmds.append(at)
                    elif body.get("id") == ecrs_id and body.get("status") == "complied":
                        complied = at
                if cmds and complied is not None:
                    results["first_ms"].append((cmds[0] - sent) * 1000)
                    results["last_ms"].append((max(c for c in cmds if c <= complied) - sent) * 1000)
                    results["complied_ms"].append((complied - sent) * 1000)
                recall = {
                    "id": f"{ecrs_id}-R",
                    "type": "RECALL",
                    "recall_id": ecrs_id,
                    "notified_at": iso(time.time()),
                }
                await client.publish(config.feeds.dispatch_topic, json.dumps(recall), qos=1)
            reader.cancel()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        await site.stop()
        broker.terminate()
        broker.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    quiet_pymodbus_logs()
    results = asyncio.run(run(args.rounds))
    n = len(results["first_ms"])
    lines = [
        (
            f"{n} of {args.rounds} rounds measured (8 MW ECRS on the 12-pool demo site, "
            "mosquitto, daemon in its own process; agents answer after 0.1 s, PLCs polled "
            "every 0.25 s)"
        ),
        "",
        "| from the ECRS publish to | median ms | p90 ms | max ms |",
        "| --- | --- | --- | --- |",
    ]
    labels = {
        "first_ms": "first pool command on the broker",
        "last_ms": "last pool command on the broker",
        "complied_ms": "`complied` ack",
    }
    for key, label in labels.items():
        values = results[key]
        if values:
            lines.append(
                f"| {label} | {statistics.median(values):.1f} | {pct(values, 0.9):.1f} "
                f"| {max(values):.1f} |"
            )
    text = "\n".join(lines)
    print(text)
    write_section(
        "ECRS reaction time (bench/bench_reaction.py)",
        text,
        ".venv/bin/python bench/bench_reaction.py --rounds " + str(args.rounds),
    )


if __name__ == "__main__":
    main()
