"""The value stack's hourly hub-price table: real-time hourly means and day-ahead, by point.

Layout (`delivery_date,hour_ending,{POINT}_RT_hourly_mean_spp,{POINT}_DAM_spp,...`): an ISO
date, hour ending 1-24 without a DST flag (the fall-back repeated hour cannot be written), one
pair of columns per settlement point, $/MWh. A row for the spring-forward hour that does not
exist is accepted only empty. An empty or `nan` price is a missing hour, like a missing row.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from controller.feeds.ercot import PRICE_MAX_USD_PER_MWH, PRICE_MIN_USD_PER_MWH, PriceFileError
from controller.model import PriceProduct, PriceRecord
from controller.value.hours import Gap, day_end_epoch, day_start_epoch, find_gaps, hour_start_epoch

Market = Literal["rt", "dam"]
SUFFIX: dict[Market, str] = {"rt": "_RT_hourly_mean_spp", "dam": "_DAM_spp"}
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


@dataclass
class HourlyPrices:
    """One point's hourly prices in a date range, and the hours of that range the file lacks."""

    path: str
    point: str
    market: Market
    records: list[PriceRecord] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def missing_hours(self) -> int:
        return sum(g.hours for g in self.gaps)


def is_hourly_hub_table(path: str | Path) -> bool:
    """Whether the file's header is this layout (to pick a reader for `--prices`)."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    names = [name.strip() for name in header]
    return names[:2] == ["delivery_date", "hour_ending"]


def read_hourly_prices(
    path: str | Path,
    point: str,
    market: Market = "rt",
    start: date | None = None,
    end: date | None = None,
    allow_gaps: bool = False,
) -> HourlyPrices:
    """`point`'s hourly prices from `start` to `end` (inclusive delivery dates).

    Raises PriceFileError (file and line) for an unknown layout, an unknown point, a bad or
    duplicated row, and, unless `allow_gaps`, for any missing hour in the range."""
    if start is not None and end is not None and start > end:
        raise PriceFileError(path, f"start {start} is after end {end}")
    out = HourlyPrices(str(path), point, market)
    lines: dict[float, int] = {}
    days: list[date] = []
    product: PriceProduct = "rt_spp" if market == "rt" else "dam_spp"
    for line, day, hour, text in _rows(path, point, market):
        days.append(day)
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        try:
            epoch = hour_start_epoch(day, hour)
        except ValueError as exc:
            if text == "" and "does not exist" in str(exc):
                continue  # the spring-forward hour, written as an empty row
            raise PriceFileError(path, str(exc), line) from None
        if epoch in lines:
            raise PriceFileError(path, f"duplicate row for {day} hour {hour} (first at line "
                                 f"{lines[epoch]})", line)  # fmt: skip
        lines[epoch] = line
        price = _price(path, line, text, point + SUFFIX[market])
        if price is not None:
            out.records.append(PriceRecord(product, point, epoch, price))
    if not days:
        raise PriceFileError(path, "no rows")
    lo = day_start_epoch(start or min(days))
    hi = day_end_epoch(end or max(days))
    if not out.records:
        span = f"{start or 'the start'} and {end or 'the end'}"
        covers = f"the file covers {min(days)} to {max(days)}"
        raise PriceFileError(path, f"no {point} prices between {span}; {covers}")
    out.records.sort(key=lambda r: r.interval_start)
    present = [(r.interval_start, lines[r.interval_start]) for r in out.records]
    out.gaps = find_gaps(present, lo, hi, flagless=True)
    if out.gaps and not allow_gaps:
        gap = out.gaps[0]
        more = f" (and {len(out.gaps) - 1} more gaps)" if len(out.gaps) > 1 else ""
        raise PriceFileError(
            path,
            f"{point}: {gap.describe()}{more}; the file covers {min(days)} to {max(days)}. "
            "Pass --allow-gaps to value only the hours present",
            gap.line,
        )
    return out


def _rows(path: str | Path, point: str, market: Market) -> Iterator[tuple[int, date, int, str]]:
    """(line, delivery date, hour ending, price text) of every row; the header checked first."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            names = [name.strip() for name in next(reader, [])]
            points = sorted(n[: -len(SUFFIX["rt"])] for n in names if n.endswith(SUFFIX["rt"]))
            if names[:2] != ["delivery_date", "hour_ending"] or not points:
                raise PriceFileError(
                    path,
                    f"unknown CSV layout, header {','.join(names) or '(empty file)'}; expected "
                    "delivery_date,hour_ending,{POINT}_RT_hourly_mean_spp,{POINT}_DAM_spp,...",
                    1,
                )
            column = point + SUFFIX[market]
            if column not in names:
                raise PriceFileError(  # line 1: the header names the points
                    path,
                    f"settlement point {point!r} not in file; present: {', '.join(points)}",
                    1,
                )
            index = names.index(column)
            dates: dict[str, date] = {}
            for fields in reader:
                if not fields:
                    continue
                line = reader.line_num
                if len(fields) != len(names):
                    raise PriceFileError(
                        path, f"expected {len(names)} fields, got {len(fields)}", line
                    )
                day = dates.get(fields[0]) or _date(path, line, fields[0].strip())
                dates[fields[0]] = day
                hour = fields[1].strip()
                if not (hour.isascii() and hour.isdigit() and 1 <= int(hour) <= 24):
                    raise PriceFileError(path, f"hour_ending {hour!r} is not 1-24", line)
                yield line, day, int(hour), fields[index].strip()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PriceFileError(path, f"cannot read: {exc}") from None


def _date(path: str | Path, line: int, text: str) -> date:
    day = None
    if _DATE.fullmatch(text) is not None:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
    if day is None:
        raise PriceFileError(path, f"delivery_date {text!r} is not YYYY-MM-DD", line)
    return day


def _price(path: str | Path, line: int, text: str, column: str) -> float | None:
    """The price, or None for a missing one (empty or nan)."""
    if text == "" or text.lower() == "nan":
        return None
    try:
        price = float(text)
    except ValueError:
        raise PriceFileError(path, f"{column} {text!r} is not a number", line) from None
    if not (math.isfinite(price) and PRICE_MIN_USD_PER_MWH <= price <= PRICE_MAX_USD_PER_MWH):
        raise PriceFileError(path, f"{column} {text} is out of range", line)
    return price
