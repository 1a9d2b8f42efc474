"""Wall time of decide() on 10, 100 and 1,000-pool sites: median and p99, in two regimes.

Each site: pools cycling through the mqtt, modbus and pdu drivers, each pool behind one
24-outlet PDU (3.5 kW outlets, so 84 kW a pool), one GPU tenant with its meter and a protected
PDU, a site meter, fresh prices, and one active ECRS deployment that binds (10% of the
site's capacity below its level at receipt).

- steady: telemetry follows the last plan exactly and the price does not move; the decision
  changes nothing (the common case on every tick).
- price-step: the price alternates between 20 and 150 $/MWh on every decision (no dwell, no
  ramp limit), so most pools switch on or off each time (the worst case for allocation).

Only decide() is timed (time.perf_counter_ns); snapshots are built before the clock starts.
Run: `.venv/bin/python bench/bench_decide.py` (or `make bench`); `--no-write` skips RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.config_checks import check_site
from controller.core.decide import decide
from controller.core.plan import Decision, Snapshot
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, PoolState, initial_state
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    PoolTelemetry,
    Reading,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import write_section  # noqa: E402

T0 = 1_700_000_000.0
OUTLETS = 24
OUTLET_KW = 3.5
POOL_KW = OUTLETS * OUTLET_KW
GPU_FIRM_KW = 2000.0
AUX_KW = 500.0
MARGIN_KW = 200.0


def site_config(n_pools: int, *, price_step: bool) -> Config:
    drivers = ("mqtt", "modbus", "pdu")
    efficiencies = (17.0, 19.5, 21.5, 24.0, 27.0, 30.0, 34.0)
    ports = itertools.count(10000)  # one Modbus address per device (a config rule)
    pools: list[dict[str, Any]] = []
    pdus: list[dict[str, Any]] = [
        {"name": "pdu-gpu", "host": "127.0.0.1", "port": next(ports), "outlets": 24,
         "outlet_kw": 10.0, "protected": True},
    ]  # fmt: skip
    for i in range(n_pools):
        name = f"p{i:04d}"
        pool: dict[str, Any] = {
            "name": name,
            "driver": drivers[i % 3],
            "max_kw": POOL_KW,
            "efficiency_j_per_th": efficiencies[i % len(efficiencies)],
            "ufr": i % 5 == 0,
            "pdus": [f"pdu-{name}"],
        }
        if pool["driver"] == "modbus":
            pool.update(host="127.0.0.1", port=next(ports), unit_id=1)
        pools.append(pool)
        pdus.append(
            {"name": f"pdu-{name}", "host": "127.0.0.1", "port": next(ports), "outlets": OUTLETS,
             "outlet_kw": OUTLET_KW}
        )  # fmt: skip
    data: dict[str, Any] = {
        "site": {
            "poi_limit_kw": GPU_FIRM_KW + AUX_KW + MARGIN_KW + 1.2 * n_pools * POOL_KW,
            "aux_kw": AUX_KW,
            "margin_kw": MARGIN_KW,
        },
        "economics": {
            "min_run_s": 0.0 if price_step else 300.0,
            "min_curtail_s": 0.0 if price_step else 300.0,
        },
        "control": {"tick_s": 1.0, "ramp_up_kw_per_s": 1e9 if price_step else 2000.0},
        "meters": [
            {"name": "poi", "role": "site", "host": "127.0.0.1", "port": next(ports)},
            {"name": "gpu-a", "role": "gpu", "host": "127.0.0.1", "port": next(ports)},
        ],
        "gpu_tenants": [
            {"name": "tenant-a", "firm_kw": GPU_FIRM_KW, "meters": ["gpu-a"], "pdus": ["pdu-gpu"]}
        ],
        "pools": pools,
        "pdus": pdus,
    }
    config = Config.model_validate(data)
    problems = check_site(config)
    if problems:
        raise SystemExit("bench site is invalid: " + "; ".join(problems))
    return config


@dataclass
class Site:
    """A closed loop: pools draw exactly their last target, meters are fresh every decision."""

    config: Config
    state: ControllerState
    now: float = T0
    price_usd_per_mwh: float = 20.0
    last: Decision | None = None
    site: SiteModel = field(init=False)

    def __post_init__(self) -> None:
        self.site = compile_site(self.config)  # as the daemon does, at load

    def snapshot(self, inbox: tuple[DispatchInstruction, ...] = ()) -> Snapshot:
        now = self.now
        pools = self.last.plan.pools if self.last is not None else {}
        telemetry = _telemetry(self.config, pools, now)
        mining_kw = sum(t.power_kw for t in telemetry.values())
        return Snapshot(
            price=ActingPrice(self.price_usd_per_mwh, now, now, "sced_lmp"),
            meters_kw={
                "poi": Reading(GPU_FIRM_KW + mining_kw + AUX_KW, now),
                "gpu-a": Reading(GPU_FIRM_KW, now),
            },
            frequency_hz=Reading(60.0, now),
            islanded=Reading(0.0, now),
            pools=telemetry,
            dispatch_inbox=inbox,
        )

    def step(self, snap: Snapshot) -> int:
        """One timed decision; returns its wall time in ns."""
        start = time.perf_counter_ns()
        decision = decide(snap, self.state, self.now, self.site)
        elapsed = time.perf_counter_ns() - start
        self.state = decision.next_state
        self.last = decision
        return elapsed


def _telemetry(
    config: Config, pools: Mapping[str, PoolState], now: float
) -> dict[str, PoolTelemetry]:
    out: dict[str, PoolTelemetry] = {}
    for pool in config.pools:
        ps = pools.get(pool.name)
        power_kw = POOL_KW if ps is None else (0.0 if ps.cut else ps.target_kw)
        out[pool.name] = PoolTelemetry(
            power_kw=power_kw,
            available_kw=None if pool.driver == "pdu" else pool.max_kw,
            online=True,
            applied_seq=0 if ps is None else ps.seq,
            at=now,
        )
    return out


def prepare(n_pools: int, *, price_step: bool) -> Site:
    """Start at full load, deploy ECRS (10% of capacity) and settle."""
    site = Site(site_config(n_pools, price_step=price_step), initial_state(T0))
    site.now += 1.0
    site.step(site.snapshot())
    ecrs = DispatchInstruction(
        id="VDI-BENCH-1",
        type=DispatchType.ECRS,
        notified_at=site.now,
        received_at=site.now,
        mining_kw_at_receipt=n_pools * POOL_KW,
        mw=0.1 * n_pools * POOL_KW / 1000.0,
        deadline_s=600.0,
    )
    site.now += 1.0
    site.step(site.snapshot((ecrs,)))
    for _ in range(20):  # settle: confirmations, escalation timers, acks
        site.now += 1.0
        site.step(site.snapshot())
    return site


def measure(
    site: Site, iterations: int, warmup: int, mutate: Callable[[Site, int], None]
) -> tuple[list[int], list[int]]:
    """Wall times (ns) of the timed decisions, and how many pool records each one changed."""
    times: list[int] = []
    changed: list[int] = []
    gc.collect()
    gc.freeze()  # as the daemon does after its first decision (app.py): the site's long-lived
    # objects leave the GC's scans, whose pauses otherwise dominate the p99
    for i in range(warmup + iterations):
        site.now += 1.0
        mutate(site, i)
        snap = site.snapshot()
        before = site.last.plan.pools if site.last is not None else {}
        elapsed = site.step(snap)
        if i >= warmup:
            times.append(elapsed)
            after = site.last.plan.pools if site.last is not None else {}
            changed.append(sum(1 for n, ps in after.items() if before.get(n) is not ps))
    return times, changed


def steady(site: Site, i: int) -> None:
    del site, i  # telemetry follows the plan; nothing else moves


def price_step(site: Site, i: int) -> None:
    site.price_usd_per_mwh = 150.0 if i % 2 == 0 else 20.0


@dataclass(frozen=True)
class Row:
    pools: int
    regime: str
    iterations: int
    median_us: float
    p99_us: float
    max_us: float
    changed_pools: float  # mean pools whose record changed per decision


def percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1000.0


def run_case(n_pools: int, regime: str, iterations: int, warmup: int) -> Row:
    stepping = regime == "price-step"
    site = prepare(n_pools, price_step=stepping)
    times, changed = measure(site, iterations, warmup, price_step if stepping else steady)
    times.sort()
    return Row(
        pools=n_pools,
        regime=regime,
        iterations=iterations,
        median_us=statistics.median(times) / 1000.0,
        p99_us=percentile(times, 0.99),
        max_us=times[-1] / 1000.0,
        changed_pools=statistics.fmean(changed),
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| pools | regime | iterations | median µs | p99 µs | max µs | pools changed |",
        "|------:|:-------|-----------:|----------:|-------:|-------:|--------------:|",
    ]
    lines += [
        f"| {r.pools} | {r.regime} | {r.iterations} | {r.median_us:.1f} | {r.p99_us:.1f} "
        f"| {r.max_us:.1f} | {r.changed_pools:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def write_results(rows: list[Row], command: str, load_1m: float) -> None:
    worst_p99_us = max((r.p99_us for r in rows if r.pools == 1000), default=float("nan"))
    verdict = "met" if worst_p99_us < 1000.0 else "MISSED"
    body = "\n".join(
        [
            "Each pool behind one 24-outlet PDU, drivers mqtt/modbus/pdu in turn, one GPU",
            "tenant, a site meter, fresh prices, one active ECRS deployment that binds.",
            "`steady`: telemetry follows the plan, nothing moves; `price-step`: the price",
            "alternates 20 <-> 150 $/MWh every decision (no dwell, no ramp limit), so most",
            "pools switch each time. Only decide() is timed (perf_counter_ns) after a warm-up,",
            "GC enabled; `pools changed` counts pool records replaced per decision.",
            f"1-minute load average at start: {load_1m:.2f} (a shared machine: figures move",
            "by a third from run to run; compare runs made back to back).",
            "",
            table(rows),
            "",
            f"Target p99 < 1 ms at 1,000 pools: **{verdict}** (worst p99 {worst_p99_us:.0f} µs).",
        ]
    )
    write_section("decide()", body, command)


def profile(n_pools: int, iterations: int = 200) -> None:
    """Print where decide() spends its time on an n-pool site, per regime (cProfile)."""
    import cProfile
    import pstats

    for regime in ("steady", "price-step"):
        stepping = regime == "price-step"
        site = prepare(n_pools, price_step=stepping)
        mutate = price_step if stepping else steady
        profiler = cProfile.Profile()
        for i in range(iterations):
            site.now += 1.0
            mutate(site, i)
            snap = site.snapshot()
            profiler.enable()
            decision = decide(snap, site.state, site.now, site.site)
            profiler.disable()
            site.state, site.last = decision.next_state, decision
        print(f"\n== {n_pools} pools, {regime}: top functions by own time")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="a tenth of the iterations")
    parser.add_argument("--profile", type=int, metavar="POOLS", help="profile, do not time")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    load_1m = os.getloadavg()[0]
    scale = 10 if args.quick else 1
    plan = [(10, 2000), (100, 2000), (1000, 1000)]
    rows: list[Row] = []
    for n_pools, iterations in plan:
        for regime in ("steady", "price-step"):
            row = run_case(n_pools, regime, iterations // scale, warmup=200 // scale)
            rows.append(row)
            print(
                f"{n_pools:>5} pools  {regime:<10}  median {row.median_us:8.1f} µs  "
                f"p99 {row.p99_us:8.1f} µs  max {row.max_us:8.1f} µs"
            )
    print()
    print(table(rows))
    if not args.no_write:
        flags = " --quick" if args.quick else ""
        write_results(rows, f".venv/bin/python bench/bench_decide.py{flags}", load_1m)
        print("\nwrote the decide() section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
