"""The value-stack run of `curtaild backtest` (controller/value): read every input, replay,
value, print."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from controller.backtest import room_kw, run_backtest
from controller.config import Config
from controller.errors import UsageError
from controller.feeds.ercot import read_price_csv
from controller.value.chart import write_value_chart
from controller.value.fourcp import read_4cp_intervals, read_ercot_load
from controller.value.hours import Gap
from controller.value.hub_prices import is_hourly_hub_table, read_hourly_prices
from controller.value.report import ReportHead, render_value, value_json
from controller.value.reserve_prices import read_reserve_prices
from controller.value.stack import StackInputs, compute_stack

MARKETS = {"rt": "real-time hourly means", "dam": "day-ahead"}


def value_command(
    config: Config, args: argparse.Namespace, start: date | None, end: date | None
) -> int:
    point = config.site.settlement_point
    gaps: list[Gap] = []
    if is_hourly_hub_table(args.prices):
        hourly = read_hourly_prices(args.prices, point, args.market, start, end, args.allow_gaps)
        records, gaps, interval_s = hourly.records, hourly.gaps, 3600.0
        prices = f"{point} {MARKETS[args.market]}"
    else:
        records, interval_s = read_price_csv(args.prices, point, start, end), None
        prices = point
    inputs = StackInputs()
    if is_hourly_hub_table(args.prices):  # the day-ahead prices size `share` offers
        dam = read_hourly_prices(args.prices, point, "dam", start, end, allow_gaps=True)
        inputs.dam = {r.interval_start: r.price_usd_per_mwh for r in dam.records}
    if args.reserve_prices:
        inputs.reserves = read_reserve_prices(args.reserve_prices)
    if args.fourcp:
        inputs.peaks = read_4cp_intervals(args.fourcp)
    if args.load and not args.fourcp:
        raise UsageError("--load is for the causal 4CP rule: give the 4CP intervals with --4cp")
    if args.load:
        inputs.load, inputs.load_path = read_ercot_load(args.load), str(args.load)
    result = run_backtest(config, records, interval_s)
    stack = compute_stack(config, result, inputs)
    span = f"{start or 'start'} .. {end or 'end'}"
    title = f"curtaild value stack: {config.site.name}, {prices}, {Path(args.prices).name} ({span})"
    head = ReportHead(title, result.hours, gaps, _facts(config, args, prices, span))
    if args.json:
        print(json.dumps(value_json(head, stack), indent=2))
    else:
        print(render_value(head, stack))
    if args.plot:
        best = stack.strategies[-1]
        chart_title = f"{config.site.name}, {prices}, {span}"
        write_value_chart(best, stack.strategies[0], Path(args.plot), chart_title)
        if not args.json:
            print(f"\nchart: {args.plot}")
    return 0


def _facts(config: Config, args: argparse.Namespace, prices: str, span: str) -> dict[str, Any]:
    bt = config.backtest
    fleet_mw = min(sum(p.max_kw for p in config.pools), room_kw(config)) / 1000.0
    offers = [
        f"{o.product} {o.mw:g} MW" if o.mw is not None else f"{o.product} {o.share:g} of fleet"
        for o in bt.offers
    ]
    return {
        "site": config.site.name,
        "prices": prices,
        "span": span,
        "files": {
            "prices": str(args.prices),
            "reserve_prices": [str(p) for p in args.reserve_prices or []],
            "fourcp": str(args.fourcp or ""),
            "load": str(args.load or ""),
        },
        "fleet_mw": fleet_mw,
        "hashprice_usd_per_ph_day": config.economics.hashprice_usd_per_ph_day,
        "offers": ", ".join(offers) or "none",
        "transmission_usd_per_kw_year": bt.transmission_usd_per_kw_year,
        "fourcp_rule": (f"off when last hour's ERCOT load >= {bt.fourcp_threshold:g} x the "
                        f"month's peak so far, hours ending {bt.fourcp_hours_ending}"),
    }  # fmt: skip
