"""`curtaild backtest --config PATH --prices CSV [--from DATE --to DATE] [--plot PNG]`, and the
value stack: `--reserve-prices CSV ... --4cp CSV --load CSV [--market rt|dam] [--json]`."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from controller.backtest import run_backtest
from controller.backtest_report import render_table, write_chart
from controller.config import load_config
from controller.errors import UsageError
from controller.extras import require
from controller.feeds.ercot import read_price_csv
from controller.value.hub_prices import is_hourly_hub_table


def backtest_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.plot:  # before the run, not after it: matplotlib is the `plot` extra
        require("matplotlib", "plot", "backtest --plot")
    start, end = _date(args.date_from, "--from"), _date(args.date_to, "--to")
    value_flags = args.reserve_prices or args.fourcp or args.load or args.json
    if value_flags or is_hourly_hub_table(args.prices):
        from controller.commands.value_stack import value_command  # noqa: PLC0415

        return value_command(config, args, start, end)
    if args.market != "rt" or args.allow_gaps:
        raise UsageError("--market and --allow-gaps apply to the hourly hub-price table only")
    point = config.site.settlement_point
    records = read_price_csv(args.prices, point, start, end)
    result = run_backtest(config, records)
    span = f"{start or 'start'} .. {end or 'end'}"
    title = f"curtaild backtest: {config.site.name}, {point}, {Path(args.prices).name} ({span})"
    print(render_table(result, title))
    if args.plot:
        write_chart(result, Path(args.plot), title)
        print(f"\nchart: {args.plot}")
    return 0


def _date(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a date as YYYY-MM-DD") from None
