"""End-to-end site-scale benchmark (issue 9): the daemon process, mosquitto and simulated
devices at several sizes, each event timed from outside and against a bare protocol floor.

    make bench        # 10/5, 100/50, 1000/200 (20 rounds each), 3000/600 (5 rounds); ~20 min
    .venv/bin/python bench/bench_scale.py --sizes 10/5 --events 3 --no-write   # a quick check

A size is PDUS/POOLS (24 outlets a PDU; see bench/scale_site.py for the site). Each round is an
ECRS curtailing about half the mining, its RECALL, an override and a frequency trip; after the
rounds, `--scrape-events` more ECRS are timed while a second process scrapes /metrics every
`--scrape-interval` seconds. Writes its section of bench/RESULTS.md unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import write_section  # noqa: E402
from bench.scale_report import report  # noqa: E402
from bench.scale_run import SizeResult, run_size  # noqa: E402
from bench.scale_site import parse_size  # noqa: E402
from controller.adapters.modbus import quiet_pymodbus_logs  # noqa: E402

TITLE = "Site scale, end to end (bench/bench_scale.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        default="10/5,100/50,1000/200,3000/600:5",
        help="PDUS/POOLS[:ROUNDS],... (ROUNDS overrides --events at that size)",
    )
    parser.add_argument("--events", type=int, default=20, help="rounds of the four events")
    parser.add_argument("--scrape-events", type=int, default=None, help="default: --events")
    parser.add_argument("--scrape-interval", type=float, default=0.1, help="seconds")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy daemon logs here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the daemon during the rounds, to here"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    quiet_pymodbus_logs()
    scrape_events = args.events if args.scrape_events is None else args.scrape_events
    results: list[SizeResult] = []
    failed: list[str] = []
    for item in args.sizes.split(","):
        # PDUS/POOLS, or PDUS/POOLS:ROUNDS for fewer rounds at a size that takes long
        label, _, rounds_text = item.partition(":")
        size = parse_size(label)
        rounds = int(rounds_text) if rounds_text else args.events
        print(f"size {size.label} ...", file=sys.stderr, flush=True)
        try:
            result = asyncio.run(
                run_size(
                    size,
                    rounds,
                    min(rounds, scrape_events),
                    args.scrape_interval,
                    args.keep_logs,
                    args.profile,
                )
            )
        except Exception as exc:  # noqa: BLE001 - one size failing must not lose the others
            failed.append(f"{size.label}: {type(exc).__name__}: {exc}")
            print(f"size {size.label} failed: {exc!r}", file=sys.stderr, flush=True)
            continue
        results.append(result)
        print(report([result], args.scrape_interval), flush=True)
    text = report(results, args.scrape_interval)
    if failed:
        text += "\n\nSizes that did not complete: " + "; ".join(failed) + "\n"
    print(text)
    if not args.no_write and results and not any(math.isnan(r.rss_mb) for r in results):
        command = f"make bench BENCH_ARGS='--sizes {args.sizes} --events {args.events}'"
        write_section(TITLE, text, command)


if __name__ == "__main__":
    main()
