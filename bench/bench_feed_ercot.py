"""`curtaild feed-ercot` against the fake ERCOT API: requests per minute and record latency.

The real feeder process, real mosquitto, the fake API (controller/sim/ercot_api.py) in this
process. The fake posts a SCED record (NP6-788-CD, HB_WEST) every `--post-every-s`; the latency
of a record is from the moment the API may first serve it (ERCOT's posting time) to its arrival
at an MQTT subscriber: about uniform over [0, poll_s], plus the feeder's own cost, measured
apart from the API answer that first held the record to its arrival. Requests per minute:
the most the fake saw in any 60 s (token requests included). Prints the figures and writes
its section of bench/RESULTS.md (`--no-write` to skip).

    .venv/bin/python bench/bench_feed_ercot.py [--poll-s 60] [--duration-s 300]
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

import aiomqtt

from controller.config_render import render_toml
from controller.feeds.price import parse_price_record
from controller.sim.configs import build_config, free_port
from controller.sim.ercot_api import FakeErcotApi, RunningFake

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.results import write_section

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, broker_port: int, fake: RunningFake, poll_s: float) -> Path:
    data = {"site": {"poi_limit_kw": 1000.0},
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "bench-feed"},
            "control": {"state_dir": str(tmp / "state")},
            "ercot_api": {"base_url": fake.base_url, "token_url": fake.token_url,
                          "username": fake.api.username, "poll_s": poll_s,
                          "publish_topic": "bench/ercot/prices",
                          "metrics_listen": f"127.0.0.1:{free_port()}"},
            "pools": [{"name": "c01", "driver": "mqtt", "max_kw": 100.0,
                       "efficiency_j_per_th": 20.0}]}  # fmt: skip
    dumped = build_config(data).model_dump(mode="python")
    dumped["mqtt"].pop("password")
    path = tmp / "feeder.toml"
    path.write_text(render_toml(dumped))
    return path


async def _run(poll_s: float, duration_s: float, post_every_s: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    port = free_port()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    api = FakeErcotApi()
    api.store.seed(time.time(), hours=1.0, post_delay_s=60.0)
    arrivals: dict[float, float] = {}  # record time -> wall time of arrival
    feeder: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.sleep(0.5)
        async with RunningFake(api) as fake, aiomqtt.Client("127.0.0.1", port) as sub:
            await sub.subscribe("bench/ercot/prices/np6-788-cd", qos=1)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CURTAILD_")}
            env |= {"CURTAILD_ERCOT_API__PASSWORD": api.password,
                    "CURTAILD_ERCOT_API__SUBSCRIPTION_KEY": api.subscription_key}  # fmt: skip
            feeder = subprocess.Popen(
                [sys.executable, "-m", "controller", "feed-ercot", "--config",
                 str(_config(tmp, port, fake, poll_s))],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

            async def read() -> None:
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    record = parse_price_record(json.loads(message.payload), time.time())
                    arrivals.setdefault(record.interval_start, time.time())

            reader = asyncio.create_task(read())
            posted: dict[float, float] = {}
            end = time.time() + duration_s
            while time.time() < end:
                now = time.time()
                record = api.store.post("np6-788-cd", "HB_WEST", float(int(now)), now)
                posted[record.at_s] = record.posted_at_s
                await asyncio.sleep(post_every_s)
            await asyncio.sleep(poll_s + 2.0)  # the last record's poll
            reader.cancel()
    finally:
        for proc in (feeder, broker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    latencies = sorted(arrivals[t] - posted[t] for t in posted if t in arrivals)
    # The feeder's own cost: from the API answer that first held a record to its arrival.
    answers = [e.at_s for e in api.log if e.status == 200 and "np6-788-cd" in e.path]
    costs = sorted(arrivals[t] - min(a for a in answers if a >= posted[t])
                   for t in posted if t in arrivals)  # fmt: skip
    times = [e.at_s for e in api.log]
    per_min = max(sum(1 for u in times if t - 60.0 < u <= t) for t in times)
    return {"records": len(posted), "delivered": len(latencies), "per_min": per_min,
            "requests": len(times), "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))], "min": latencies[0],
            "max": latencies[-1], "over_limit": api.over_limit,
            "cost_p50": statistics.median(costs), "cost_max": costs[-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--poll-s", type=float, default=60.0)
    parser.add_argument("--duration-s", type=float, default=300.0)
    parser.add_argument("--post-every-s", type=float, default=7.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    r = asyncio.run(_run(args.poll_s, args.duration_s, args.post_every_s))
    body = (
        f"poll_s {args.poll_s:g}, {args.duration_s:g} s, a SCED record posted every "
        f"{args.post_every_s:g} s: {r['delivered']:.0f} of {r['records']:.0f} records "
        f"delivered.\n\n"
        f"| figure | value |\n| --- | --- |\n"
        f"| requests in the busiest 60 s (tokens included) | {r['per_min']:.0f} |\n"
        f"| requests in all | {r['requests']:.0f} |\n"
        f"| 429s from the fake's limiter | {r['over_limit']:.0f} |\n"
        f"| record latency, posting to MQTT, median | {r['p50']:.2f} s |\n"
        f"| record latency p95 / min / max | {r['p95']:.2f} / {r['min']:.2f} / {r['max']:.2f} s |\n"
        f"| feeder's own cost, API answer to MQTT arrival, median / max | "
        f"{r['cost_p50'] * 1000:.1f} / {r['cost_max'] * 1000:.1f} ms |\n"
        "\nLatency is the wait for the next poll (about uniform over [0, poll_s]) plus the "
        "feeder's own cost (reading the answer, parsing, the MQTT publish and its PUBACK, the "
        "state save). A 2-core machine shared with other work: figures are noisy.\n"
    )
    print(body)
    if not args.no_write:
        write_section("feed-ercot against the fake ERCOT API", body,
                      f"bench/bench_feed_ercot.py --poll-s {args.poll_s:g} "
                      f"--duration-s {args.duration_s:g}")  # fmt: skip


if __name__ == "__main__":
    main()
