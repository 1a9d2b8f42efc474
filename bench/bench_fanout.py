"""The outlet fan-out alone, in one process (issue 9): the Applier cutting every outlet of 250
PDUs (50 outlet pools of 5 PDUs, 24 outlets each, as the trip at 1000/200) while 150 more pools
of 5 PDUs keep their plan, against a bare pymodbus `gather` of the same 250 writes from the same
process.

No daemon, broker, decision or store: this isolates the per-write overhead of the path from the
plan to the socket, which `bench_scale.py` measures end to end but with a noisy spread. The PDU
servers (controller/sim/modbus_lite.py) run in a child process. Each round alternates cutting
and restoring every outlet; times are from the call to the last reply.

    .venv/bin/python bench/bench_fanout.py [--pdus 250] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from dataclasses import replace
from multiprocessing.connection import Connection

import uvloop
from pymodbus.client import AsyncModbusTcpClient

from controller.adapters.modbus import EndpointPool
from controller.clock import SystemClock
from controller.config import PduConfig, PoolConfig
from controller.core.plan import Plan
from controller.core.state import PoolState
from controller.drivers.deps import PoolDeps
from controller.drivers.health import HealthBoard
from controller.drivers.pdu import PduDriver
from controller.drivers.pdu_pool import make as make_pdu_pool
from controller.runtime.apply import Applier
from controller.sim.modbus_lite import LitePdu, LiteServer

OUTLETS = 24
PDUS_PER_POOL = 5


def _serve(conn: Connection, pdus: int) -> None:
    async def main() -> None:
        servers = [LiteServer({1: LitePdu(f"p{i}", OUTLETS, 3.5)}) for i in range(pdus)]
        conn.send([await s.start() for s in servers])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop

    uvloop.run(main())


def _plan(pools: list[str], seq: int, cut: bool, at: float) -> Plan:
    states = {
        name: PoolState(seq=seq, target_kw=0.0 if cut else 420.0, reason="bench", cut=cut,
                        outlets_on=0 if cut else OUTLETS * PDUS_PER_POOL, target_at=at)
        for name in pools
    }  # fmt: skip
    return Plan(at, None, 0.0, "bench", 0.0, 0.0, 0.0, 0.0, states, frozenset())


async def _daemon_path(ports: list[int], idle: list[int], rounds: int) -> list[float]:
    clock = SystemClock()
    endpoints = EndpointPool(timeout_s=1.0)
    pdus = {
        f"p{i}": PduDriver(
            PduConfig(name=f"p{i}", host="127.0.0.1", port=port, outlets=OUTLETS, outlet_kw=3.5),
            endpoints.get("127.0.0.1", port),
            lambda _name: None,
        )
        for i, port in enumerate(ports + idle)
    }
    deps = PoolDeps(endpoints, HealthBoard(clock.monotonic), pdus, clock, lambda *_: True, "b",
                    None)  # type: ignore[arg-type]  # fmt: skip
    names = list(pdus)
    drivers = {}
    for k in range(0, len(names), PDUS_PER_POOL):  # the written pools first, then the idle
        cfg = PoolConfig(name=f"u{k}", driver="pdu", max_kw=420.0, efficiency_j_per_th=21.5,
                         pdus=names[k : k + PDUS_PER_POOL])  # fmt: skip
        drivers[cfg.name] = make_pdu_pool(cfg, deps)
    applier = Applier(drivers, clock)
    written = list(drivers)[: len(ports) // PDUS_PER_POOL]
    steady = _plan(list(drivers), 1, False, clock.time())
    await applier.apply(steady)  # connect, learn outlets
    took = []
    for r in range(rounds):
        plan = _plan(written, r + 2, r % 2 == 0, clock.time())
        plan = replace(plan, pools={**steady.pools, **plan.pools})  # idle pools: same records
        started = time.perf_counter()
        report = await applier.apply(plan)
        took.append((time.perf_counter() - started) * 1000.0)
        assert report.by_driver.get("pdu") == len(ports), report
    endpoints.close()
    return took


async def _floor(ports: list[int], rounds: int) -> list[float]:
    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=p, retries=0, reconnect_delay=0) for p in ports
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    took = []
    for r in range(rounds):
        values = [r % 2 == 1] * OUTLETS
        started = time.perf_counter()
        await asyncio.gather(*(c.write_coils(0, values) for c in clients))
        took.append((time.perf_counter() - started) * 1000.0)
    for c in clients:
        c.close()
    return took


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdus", type=int, default=250, help="PDUs written each round")
    parser.add_argument("--idle-pdus", type=int, default=750, help="PDUs of pools left as is")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    here, there = mp.Pipe()
    total = args.pdus + args.idle_pdus
    server = mp.get_context("spawn").Process(target=_serve, args=(there, total), daemon=True)
    server.start()
    every: list[int] = here.recv()
    ports, idle = every[: args.pdus], every[args.pdus :]
    daemon, floor = [], []
    for _ in range(3):  # interleaved, so that a neighbour's burst hits both
        daemon += uvloop.run(_daemon_path(ports, idle, args.rounds))
        floor += uvloop.run(_floor(ports, args.rounds))
    here.send("stop")
    server.join(5)
    d, f = statistics.median(daemon), statistics.median(floor)
    print(f"{args.pdus} PDU writes, {len(daemon)} rounds each, 2 shared cores")
    print(f"Applier (daemon path): p50 {d:.1f} ms, p90 {_p90(daemon):.1f} ms")
    print(f"bare pymodbus gather:  p50 {f:.1f} ms, p90 {_p90(floor):.1f} ms")
    print(f"ratio at p50: {d / f:.2f}x")


if __name__ == "__main__":
    main()
