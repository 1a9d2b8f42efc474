"""Does a Prometheus scrape delay a decision? decide() plus its metric updates, timed with and
without a second thread rendering /metrics (what the metrics server thread does per scrape).

First a census at bench_scale.py's 1000 PDUs / 200 pools site: how many series, which families,
and what one render costs: prometheus-client's generate_latest over every family (how the daemon
rendered before issue 9) against `Metrics.render` (what it serves now: cached table text plus
prometheus-client for the rest), right after every series changed and with nothing changed.

The site and its ECRS deployment are bench_decide.py's (`prepare`), in its two regimes: steady
(nothing moves, the common tick) and price-step (most pool series change on every decision).
Each timed step is what the control loop does in-process per decision: decide(), then
MetricsView.update_from_decision and update_from_snapshot. The scraping thread calls
`Metrics.render` with Prometheus' Accept header (OpenMetrics) back to back, with no pause: far
harsher than a real scrape every 5 s (deploy/prometheus/prometheus.yml). Phases alternate in
blocks so that machine load drifts hit both alike.

Run: `.venv/bin/python bench/bench_scrape.py`; `--no-write` skips RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import generate_latest

from controller.adapters.metrics import Metrics
from controller.runtime.metrics_view import MetricsView

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_decide import Site, percentile, prepare, price_step, steady  # noqa: E402
from bench.results import write_section  # noqa: E402
from bench.scale_site import parse_size, scale_config  # noqa: E402

# What Prometheus 2.x sends (deploy/prometheus/prometheus.yml scrapes the daemon).
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@dataclass
class Phase:
    times_ns: list[int] = field(default_factory=list)

    def row(self, label: str) -> str:
        t = sorted(self.times_ns)
        return (
            f"| {label} | {len(t)} | {statistics.median(t) / 1000:.1f} "
            f"| {percentile(t, 0.99):.1f} | {t[-1] / 1000:.1f} |"
        )


class Scraper(threading.Thread):
    """Renders the registry in a loop until stopped; counts renders and their time."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(daemon=True)
        self.metrics = metrics
        self.stop = threading.Event()
        self.renders: list[int] = []
        self.size = 0

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter_ns()
            self.size = len(self.metrics.render(ACCEPT)[0])
            self.renders.append(time.perf_counter_ns() - start)


def step(site: Site, view: MetricsView, mutate: Callable[[Site, int], None], i: int) -> int:
    site.plant.now += 1.0
    mutate(site, i)
    snap = site.snapshot()
    start = time.perf_counter_ns()
    decision = site.plant.decide(snap)
    view.update_from_decision(decision)
    view.update_from_snapshot(snap)
    elapsed = time.perf_counter_ns() - start
    site.plant.keep(decision)
    site.plant.apply(decision.plan)
    return elapsed


READING = (
    "Reading: the scrape runs in its own thread but holds the GIL while it renders, so a",
    "decision that overlaps one waits its turn. The per-pool and per-device families (most",
    "series) are rendered once per change and reused; a scrape otherwise renders only the",
    "few hundred other series. The price-step regime changes every pool series on every",
    "decision, so there each scrape re-renders the tables: the worst case. The metric",
    "updates themselves, not decide(), are most of a decision's time at scale.",
)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


def census(size_text: str) -> list[str]:
    """Series per family at a bench_scale.py site with every series present, and render costs."""
    size = parse_size(size_text)
    config = scale_config(size, 1883, 9108, "/nonexistent")  # built, never run
    m = Metrics(config)
    pools = [p.name for p in config.pools]
    devices = [*(x.name for x in config.meters), *(x.name for x in config.pdus), *pools]
    for driver in ("mqtt", "modbus", "pdu"):
        m.observe_command_confirm(driver, 0.5)
    for trigger in ("price", "dispatch", "override", "pool", "frequency", "tick"):
        m.observe_event_to_command(trigger, 0.01)

    def change_everything(i: int = 0) -> None:
        for name in pools:
            m.set_pool_plan(name, 100.0 + i, "running", None if i == 0 else "running")
            m.set_pool_power_kw(name, 90.0 + i)
        for name in devices:
            m.set_device_up(name, up=i % 2 == 0)

    change_everything()
    text = m.exposition().decode()
    families: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if not line.startswith("#"):
            name = line.partition("{")[0].partition(" ")[0]
            families[name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")] += 1
    top = ", ".join(f"{n} {k}" for n, k in families.most_common(4))
    full = median_ms(lambda: generate_latest(m.registry), 30)
    cold_ns = []
    for i in range(1, 31):  # time the render only: the writes are the loop's
        change_everything(i)
        start = time.perf_counter_ns()
        m.render(ACCEPT)
        cold_ns.append(time.perf_counter_ns() - start)
    cold = statistics.median(cold_ns) / 1e6
    warm = median_ms(lambda: m.render(ACCEPT), 100)
    counts = (
        f"- {size.label} ({len(pools)} pools, {len(devices)} devices): "
        f"{sum(families.values())} series, {len(text) / 1024:.0f} KiB; most: {top}."
    )
    renders = (
        f"- one render, median: prometheus-client over every family {full:.1f} ms; "
        f"served (`Metrics.render`) {cold:.1f} ms after every series changed, "
        f"{warm:.1f} ms with nothing changed ({full / warm:.0f}x less GIL per scrape)."
    )
    return [counts, renders]


MUTATE: dict[str, Callable[[Site, int], None]] = {"steady": steady, "price-step": price_step}


def run(pools: int, regime: str, blocks: int, per_block: int) -> tuple[str, str]:
    site = prepare(pools, price_step=regime == "price-step")
    mutate = MUTATE[regime]
    metrics = Metrics(site.plant.config)
    view = MetricsView(metrics, site.plant.config)
    for i in range(50):  # warm-up: every series exists
        step(site, view, mutate, i)
    series = sum(1 for line in metrics.exposition().decode().splitlines() if line[:1] != "#")
    quiet, scraped = Phase(), Phase()
    renders: list[int] = []
    size = 0
    gc.collect()
    gc.freeze()
    i = 0
    for _ in range(blocks):
        for _ in range(per_block):
            quiet.times_ns.append(step(site, view, mutate, i))
            i += 1
        scraper = Scraper(metrics)
        scraper.start()
        while not scraper.renders:  # the scrape thread is running before the clock starts
            time.sleep(0.001)
        for _ in range(per_block):
            scraped.times_ns.append(step(site, view, mutate, i))
            i += 1
        scraper.stop.set()
        scraper.join()
        renders += scraper.renders
        size = scraper.size
    render_ms = statistics.median(renders) / 1e6
    case = f"{pools} pools, {regime}"
    rows = [quiet.row(f"{case}, no scrape"), scraped.row(f"{case}, scraping")]
    note = (
        f"{case}: {series} series, {size / 1024:.0f} KiB a scrape, rendered in "
        f"{render_ms:.1f} ms (median of {len(renders)}); median decision "
        f"{statistics.median(scraped.times_ns) / statistics.median(quiet.times_ns):.2f}x "
        "while scraping."
    )
    return "\n".join(rows), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--per-block", type=int, default=300)
    parser.add_argument("--census", default="1000/200", help="PDUS/POOLS of bench_scale.py")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_1m = os.getloadavg()[0]
    sizes = census(args.census)
    print(*sizes, sep="\n", flush=True)
    rows, notes = [], []
    for pools in args.pools:
        for regime in MUTATE:
            row, note = run(pools, regime, args.blocks, args.per_block)
            rows.append(row)
            notes.append(f"- {note}")
            print(row, note, sep="\n", flush=True)
    body = "\n".join(
        [
            "decide() plus the metric updates of the same decision (MetricsView), on",
            "bench_decide.py's site in its steady and price-step regimes, timed with no scrape",
            "and while another thread renders /metrics back to back (a real scrape comes",
            "every 5 s); blocks of each alternate. First, the series of bench_scale.py's site.",
            f"1-minute load average at start: {load_1m:.2f} (a machine shared with other work).",
            "",
            *sizes,
            "",
            "| case | decisions | median µs | p99 µs | max µs |",
            "|:-----|----------:|----------:|-------:|-------:|",
            *rows,
            "",
            *notes,
            "",
            *READING,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("scrape cost", body, "python bench/bench_scrape.py")


if __name__ == "__main__":
    main()
