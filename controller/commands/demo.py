"""`curtaild demo`: the whole daemon against a simulated site on loopback.

An embedded broker, Modbus PDUs, meters and PLCs, MQTT pool agents (one of them stuck, to show
escalation), a price replay, a scripted ECRS deployment, an operator override, a GPU tenant
surge and an under-frequency dip, with a live console view and metrics served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from controller import logs
from controller.adapters.broker import EmbeddedBroker
from controller.adapters.mqtt import MqttSession
from controller.app import Daemon, run_main
from controller.config import MqttConfig
from controller.config_render import render_toml
from controller.errors import UsageError
from controller.extras import require
from controller.feeds.ercot import iter_905_rows
from controller.sim.demo_site import DEMO_PREFIX, demo_config
from controller.sim.miners.lab import LAB_MAX_KW, LAB_POOL, Lab, start_lab
from controller.sim.replay import price_topic_base, select_records, synthetic_storm_day
from controller.sim.scenario import ECRS_ID, Scenario
from controller.sim.site import SimSite
from controller.sim.view import LEGEND, render_line

STORM_DAYS = (date(2024, 1, 15), date(2024, 1, 17))  # Winter Storm Heather, HB_WEST $1,174.66


def demo_command(args: argparse.Namespace) -> int:
    require("amqtt", "demo", "curtaild demo (its embedded MQTT broker)")  # before anything starts
    logs.configure(level="warning", json_lines=False)
    return run_main(_demo(args))


def _records(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    if not args.prices:
        return list(synthetic_storm_day()), "SYNTHETIC storm day (no price file given)"
    path = Path(args.prices)
    if not path.is_file():
        raise UsageError(f"--prices {path}: no such file")
    start = date.fromisoformat(args.date_from) if args.date_from else None
    end = date.fromisoformat(args.date_to) if args.date_to else None
    if start is None and end is None:
        start, end = STORM_DAYS
        rows = list(select_records(iter_905_rows(path), ("HB_WEST",), start, end))
        if rows:
            return rows, f"real ERCOT prices, HB_WEST {start} .. {end} ({path.name})"
        start = end = None
    rows = list(select_records(iter_905_rows(path), ("HB_WEST",), start, end))[: 96 * 3]
    if not rows:
        raise UsageError(f"--prices {path}: no HB_WEST rows in the chosen dates")
    return rows, f"real ERCOT prices, HB_WEST, {len(rows)} intervals ({path.name})"


async def _demo(args: argparse.Namespace) -> int:
    records, label = _records(args)
    broker = EmbeddedBroker(port=0)
    await broker.start()
    state_dir = tempfile.mkdtemp(prefix="curtaild-demo-")
    probe_mqtt = MqttConfig(host="127.0.0.1", port=broker.port, client_id="curtaild-demo",
                            topic_prefix=DEMO_PREFIX, keepalive_s=10)  # fmt: skip
    lab, lab_line = await start_lab(probe_mqtt, Path(state_dir) / "agent")
    lab_pool = (LAB_POOL, LAB_MAX_KW) if lab is not None else None
    config = demo_config(broker.port, args.metrics_port, state_dir, lab_pool)
    assert config.mqtt.topic_prefix == DEMO_PREFIX
    # Kept after the demo with its state store: `curtaild audit` reads the proof from both.
    config_path = Path(state_dir) / "curtaild.toml"
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password", None)  # a secret never goes into a file
    config_path.write_text(render_toml(dumped))
    site = SimSite(config, stuck_pools=frozenset({"s17-a"}))
    if lab is not None:
        site.agents[LAB_POOL].go_silent()  # the real agent answers for this pool
    await site.start()
    daemon = Daemon(config)
    daemon_task = asyncio.create_task(daemon.run(), name="daemon")
    feeder = MqttSession(
        config.mqtt,
        [f"{config.mqtt.topic_prefix}/dispatch/ack", f"{config.mqtt.topic_prefix}/pools/+/cmd"],
        lambda t, p, r: scenario.on_message(t, p, r),  # noqa: PLW0108
        client_id="demo-feeder",
    )
    scenario = Scenario(config, site, daemon, feeder)
    feeder_task = asyncio.create_task(feeder.run(), name="demo-feeder")
    print(f"curtaild demo: {len(config.pools)} pools, 60 MW POI, 20 MW GPU tenant; {label}")
    print(
        f"metrics: http://127.0.0.1:{args.metrics_port}/metrics   broker: 127.0.0.1:{broker.port}"
    )
    print(lab_line)
    print(LEGEND)
    try:
        await asyncio.wait_for(daemon.loop.first_decision.wait(), 15)
        await feeder.wait_connected(5)
        await _replay(records, args, config.feeds.price_topic, feeder, scenario, daemon, site,
                      lab)  # fmt: skip
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted")
    finally:
        daemon.stop_requested.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon_task, 10)
        await feeder.close()
        feeder_task.cancel()
        if lab is not None:
            print(lab.line())
            await lab.stop()
        await site.stop()
        await broker.stop()
    print(scenario.summary())
    print(
        f"  the audit trail stays in {state_dir}; the ECRS deployment's proof:\n"
        f"    curtaild audit --config {config_path} --dispatch {ECRS_ID}"
    )
    return 0


async def _replay(
    records: list[dict[str, Any]],
    args: argparse.Namespace,
    price_topic: str,
    feeder: MqttSession,
    scenario: Scenario,
    daemon: Daemon,
    site: SimSite,
    lab: Lab | None = None,
) -> None:
    topic = price_topic_base(price_topic) + "/rt_spp"
    live = sys.stdout.isatty() and not args.plain
    total = len(records)
    for i, record in enumerate(records):
        if daemon.stop_requested.is_set():  # Ctrl-C or SIGTERM reached the daemon's handler
            print("\nstopping on signal")
            break
        feeder.publish(topic, json.dumps(record, separators=(",", ":")), 1, False)
        await scenario.at_progress(i / total, record)
        await asyncio.sleep(args.speed)
        line = render_line(daemon.loop.plan, record, sum(site.gpu_kw.values()), scenario.note)
        if live:
            print("\r\x1b[2K" + line[:200], end="", flush=True)
        elif i % 4 == 0 or scenario.note:
            print(line)
        if lab is not None and not live and i % 16 == 0:
            print("    " + lab.line())  # the same price, seen at the miners through pyasic
    if live:
        print()
