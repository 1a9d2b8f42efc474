"""Fault recovery, measured from outside the daemon: each fault of docs/reliability.md injected
into the real `curtaild run` process, on a real mosquitto, with the simulated site of the
integration tests (tests/integration/site.py: 5 pools, PDUs, meters, a PLC), several rounds each.

Times are taken where a site would see them: messages on the broker (a separate MQTT client),
the state of the simulated devices (sampled every 5 ms), sd_notify datagrams, the process exit.
After each round the state store is opened and its audit trail compared with every event the
broker carried; acks, obligations and commands are checked against what was in force before the
fault. "Lost" lists what a round found missing or wrong; empty means nothing was lost.

Two scenarios run in this process: decide() failing (the daemon's own loop and SQLite store,
tests/unit/loop_rig.py, on the wall clock) and the corrupt store (no broker needed).

Run: `.venv/bin/python bench/bench_faults.py` (or `make bench-faults`): about 5 minutes.
`--only KEY,...` runs some scenarios, `--rounds N` overrides every round count, `--no-write`
leaves RESULTS.md alone. Not next to a test run: both load the 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import faults_devices, faults_inputs, faults_local, faults_restart  # noqa: E402
from bench.faults_common import Env, OneRound, Round, repeat  # noqa: E402
from bench.results import write_section  # noqa: E402
from controller import logs  # noqa: E402
from controller.adapters.modbus import quiet_pymodbus_logs  # noqa: E402
from tests.support import MosquittoBroker, find_mosquitto  # noqa: E402

Runner = Callable[[Env, int], Awaitable[list[Round]]]


@dataclass(frozen=True)
class Scenario:
    key: str
    fault: str
    rounds: int
    run: Runner


def each(one: OneRound) -> Runner:
    """A scenario whose rounds each get a site (and daemon) of their own."""
    return lambda env, rounds: repeat(env, rounds, one)


def corrupt(damage: str) -> Runner:
    return each(functools.partial(faults_local.corrupt_store, damage=damage))


SCENARIOS = [
    Scenario("kill9", "kill -9 during a complied ECRS, restarted", 5,
             each(faults_restart.kill9_mid_deployment)),
    Scenario("kill9-accepted", "kill -9 right after `accepted` (before `complied`)", 5,
             each(faults_restart.kill9_before_complied)),
    Scenario("kill9-rejected", "kill -9 right after an instruction was rejected", 5,
             each(faults_restart.kill9_after_rejected)),
    Scenario("kill9-down", "an ECRS published while the daemon is down (killed), then restart", 3,
             each(faults_restart.instruction_while_down)),
    Scenario("broker", "mosquitto restarted (1 s down, retained lost) during a complied ECRS", 5,
             each(faults_restart.broker_restart)),
    Scenario("kill9-broker", "kill -9 and restart during an ECRS, then mosquitto restarted", 3,
             each(functools.partial(faults_restart.broker_restart, kill_first=True))),
    Scenario("pdu-dead", "one PDU server stopped, another answering in 2 s, during an 11 MW "
             "ECRS with stuck agents", 3, each(faults_devices.pdu_dead_and_slow)),
    Scenario("pdu-back", "an outlet pool's PDU stopped while the price curtails it, then back",
             5, each(faults_devices.pdu_back)),
    Scenario("stuck-cut", "a stuck agent's pool cut under `curtail`, then a 1000 kW `limit`", 3,
             each(faults_devices.stuck_cut_then_room)),
    Scenario("reboot", "an agent's miners reboot at full power (deaf 4 s), 2.5 MW of room", 5,
             each(faults_devices.agent_reboot)),
    Scenario("silent", "an agent goes silent (pool_stale_s 2), then comes back", 5,
             each(faults_devices.silent_agent)),
    Scenario("meter", "the site meter stops answering (meter_stale_s 1), then answers", 5,
             each(faults_devices.site_meter_stale)),
    Scenario("poison", "deadline_s 1e308, a year-9999 price and a 2**70 seq (one daemon)", 10,
             faults_inputs.poison_messages),
    Scenario("reload", "SIGHUP with an unreadable hmac_key_file (one daemon)", 10,
             faults_inputs.reload_unreadable_key),
    Scenario("decide", "decide() raising on every decision (in process, loop_rig)", 5,
             each(faults_local.decisions_failing)),
    Scenario("store-full", "every store write failing (disk full) during an ECRS, then back "
             "(in process, loop_rig)", 3, each(faults_local.store_full)),
    Scenario("store-page", "state store with a damaged page, at start", 5, corrupt("page")),
    Scenario("store-garbage", "state store overwritten with random bytes, at start", 5,
             corrupt("garbage")),
]  # fmt: skip


# -- figures ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(label: str, value: float) -> str:
    if label.endswith("(count)"):
        return f"{value:.0f}"
    if label.endswith(("(%)", "(kW)")):
        return f"{value:.0f}"
    return f"{value:.3f}"


def times_table(results: list[tuple[Scenario, list[Round]]]) -> str:
    lines = [
        "| fault | from -> to | rounds | median | p90 | max |",
        "| --- | --- | --: | --: | --: | --: |",
    ]
    for scenario, rounds in results:
        labels: dict[str, list[float]] = {}
        for rnd in rounds:
            for label, value in rnd.times.items():
                labels.setdefault(label, []).append(value)
        for label, values in labels.items():
            p90 = show(label, pct(values, 0.9)) if len(values) >= 10 else ""
            lines.append(
                f"| {scenario.key} | {label} | {len(values)} | "
                f"{show(label, statistics.median(values))} | {p90} | {show(label, max(values))} |"
            )
    return "\n".join(lines)


def lost_table(results: list[tuple[Scenario, list[Round]]]) -> str:
    lines = [
        "| fault | rounds | nothing lost | lost or wrong (rounds) |",
        "| --- | --: | --: | --- |",
    ]
    for scenario, rounds in results:
        clean = sum(1 for r in rounds if not r.lost)
        problems = Counter(p for r in rounds for p in dict.fromkeys(r.lost))
        found = "; ".join(f"{p} ({n})" for p, n in problems.items()) or "nothing"
        lines.append(f"| {scenario.key} | {len(rounds)} | {clean} | {found} |")
    return "\n".join(lines)


def notes(results: list[tuple[Scenario, list[Round]]], *, logs_too: bool) -> list[str]:
    out = []
    for scenario, rounds in results:
        counted = Counter(n for r in rounds for n in dict.fromkeys(r.notes))
        for note, k in counted.items():
            if logs_too or not note.startswith("daemon log tail"):
                out.append(f"- {scenario.key} ({k} of {len(rounds)} rounds): {note}")
    return out


# -- running -------------------------------------------------------------------------------------


async def run(chosen: list[Scenario], rounds: int | None) -> list[tuple[Scenario, list[Round]]]:
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is missing: run `sudo apt-get install mosquitto`")
    workdir = Path(tempfile.mkdtemp(prefix="curtaild-bench-faults-"))
    broker = MosquittoBroker(binary)
    broker.start()
    env = Env(binary, broker, workdir)
    results = []
    try:
        for scenario in chosen:
            n = rounds or scenario.rounds
            began = time.monotonic()
            print(f"{scenario.key}: {scenario.fault} ({n} rounds) ...", flush=True)
            got = await scenario.run(env, n)
            clean = sum(1 for r in got if not r.lost)
            took_s = time.monotonic() - began
            print(f"  {took_s:.0f} s, nothing lost in {clean} of {len(got)}", flush=True)
            for problem in sorted({p for r in got for p in r.lost}):
                print(f"  LOST/WRONG: {problem}", flush=True)
            results.append((scenario, got))
    finally:
        broker.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--only", default="", help="comma-separated scenario keys")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every scenario")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    keys = [k for k in args.only.split(",") if k]
    unknown = set(keys) - {s.key for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {[s.key for s in SCENARIOS]}")
    chosen = [s for s in SCENARIOS if not keys or s.key in keys]
    logs.configure("critical")
    logging.disable(logging.ERROR)  # the simulated devices' reconnect noise; the daemon logs apart
    quiet_pymodbus_logs()
    load_start = os.getloadavg()[0]
    began = time.monotonic()
    results = asyncio.run(run(chosen, args.rounds))
    minutes = (time.monotonic() - began) / 60
    load_end = os.getloadavg()[0]
    faults = "\n".join(f"- `{s.key}`: {s.fault}" for s, _ in results)
    body = "\n".join([
        "Each fault injected into the real daemon (`curtaild run`, its own process) on a real",
        "mosquitto, against the simulated site of the integration tests (30 MW POI, 10 MW firm",
        "GPU tenant, pools a1-a3 MQTT, plc1 PLC, px outlets; tick 0.2 s, confirm_timeout_s 1 s).",
        "Times in seconds, measured outside the daemon: arrival at a separate MQTT subscriber,",
        "simulated device state sampled every 5 ms, sd_notify datagrams, process exit. `decide`",
        "runs the daemon's loop and store in-process (tests/unit/loop_rig.py). p90 is shown",
        "where there are 10 rounds or more. After each round the store's audit trail is",
        "compared with every event the broker carried, and acks, obligations and commands with",
        "what was in force before the fault.",
        (f"1-minute load average {load_start:.2f} at start, {load_end:.2f} at the end; "
         f"{minutes:.1f} minutes in all."),
        "",
        faults,
        "",
        times_table(results),
        "",
        "What was lost or wrong, per fault (`nothing lost`: rounds where every check held):",
        "",
        lost_table(results),
        "",
        *notes(results, logs_too=False),
    ])  # fmt: skip
    print()
    print(body)
    for line in notes(results, logs_too=True):
        if "daemon log tail" in line:
            print(line)
    if args.no_write or keys or args.rounds:
        return
    write_section("Fault recovery (bench/bench_faults.py)", body,
                  ".venv/bin/python bench/bench_faults.py")  # fmt: skip
    print("\nwrote the fault recovery section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
