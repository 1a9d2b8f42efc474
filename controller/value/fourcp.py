"""4CP: the official intervals, ERCOT's hourly load, and the causal rule that uses only the past.

A transmission customer's charge for a year is its rate ($/kW-year) times its mean load in the
four 15-minute intervals of ERCOT's coincident peaks, one each in June to September. ERCOT
publishes them after the summer (NP9-83-M); the file read here lists them as
`year,month,cp_date,interval_start_cpt,interval_ending_cpt,...`. The hourly operational load
(NP6-346-CD: `OperDay,HourEnding,...,TOTAL,DSTFlag`) peaks on another day in some months, so
the intervals are never derived from it; the causal rule reads it as a site would see it live.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from controller.feeds.ercot import PriceFileError, central_to_epoch
from controller.value.hours import (
    HOUR_S,
    day_start_epoch,
    hour_ending,
    hour_start_epoch,
    label,
    local,
)

CP_MONTHS = (6, 7, 8, 9)
CP_INTERVAL_S = 900.0
CP_COLUMNS = ("year", "month", "cp_date", "interval_start_cpt", "interval_ending_cpt")
LOAD_COLUMNS = ("OperDay", "HourEnding", "TOTAL", "DSTFlag")
_HHMM = re.compile(r"(\d\d):(\d\d)")
_DATE = re.compile(r"(\d\d)/(\d\d)/(\d{4})")


@dataclass(frozen=True)
class CoincidentPeak:
    year: int
    month: int
    start: float  # epoch s of the 15-minute interval's start

    def describe(self) -> str:
        return f"{local(self.start):%Y-%m-%d %H:%M}"


def read_4cp_intervals(path: str | Path) -> dict[int, list[CoincidentPeak]]:
    """The official intervals by year. Raises PriceFileError (file and line) for an unknown
    layout, a bad row, an interval not 15 minutes long, a month outside June-September or a
    year with a month twice."""
    out: dict[int, list[CoincidentPeak]] = {}
    for line, row in _dict_rows(path, CP_COLUMNS, "4CP intervals"):
        try:
            year, month = int(row["year"]), int(row["month"])
            day = date.fromisoformat(row["cp_date"])
            start = _clock(day, row["interval_start_cpt"])
            end = _clock(day, row["interval_ending_cpt"])
        except ValueError as exc:
            raise PriceFileError(path, f"bad 4CP row: {exc}", line) from None
        if month not in CP_MONTHS or (day.year, day.month) != (year, month):
            raise PriceFileError(path, f"4CP {day} is not in June-September of {year}", line)
        if end - start != CP_INTERVAL_S:
            raise PriceFileError(path, "a 4CP interval is 15 minutes (start, ending)", line)
        peaks = out.setdefault(year, [])
        if any(p.month == month for p in peaks):
            raise PriceFileError(path, f"{year}-{month:02d} has a second 4CP interval", line)
        peaks.append(CoincidentPeak(year, month, start))
    if not out:
        raise PriceFileError(path, "no rows")
    return out


def read_ercot_load(path: str | Path) -> dict[float, float]:
    """ERCOT's hourly TOTAL load (MW) by epoch hour start, from an NP6-346-CD CSV."""
    load: dict[float, float] = {}
    for line, row in _dict_rows(path, LOAD_COLUMNS, "NP6-346-CD"):
        try:
            epoch, mw = _load_row(row)
        except ValueError as exc:
            raise PriceFileError(path, str(exc), line) from None
        if not (math.isfinite(mw) and mw > 0):
            raise PriceFileError(path, f"TOTAL {row['TOTAL']} is not a load in MW", line)
        if epoch in load:
            raise PriceFileError(path, f"duplicate row for {label(epoch)}", line)
        load[epoch] = mw
    return load


def causal_off_hours(
    load: dict[float, float],
    years: Iterable[int],
    threshold: float,
    hours_ending: Iterable[int],
    path: str,
) -> list[float]:
    """The hours (epoch starts) the causal rule takes mining off in June-September of `years`.

    At the start of each hour ending listed, all the rule knows is ERCOT's load up to the hour
    that just ended: it goes off when that hour's load is at or above `threshold` x the month's
    highest hourly load so far (that hour included). Raises PriceFileError naming `path` when
    the load of an hour it needs is missing."""
    wanted = set(hours_ending)
    off: list[float] = []
    for year in sorted(set(years)):
        for month in CP_MONTHS:
            first, end = _month_start_epoch(year, month), _month_start_epoch(year, month + 1)
            peak_mw = 0.0
            t = first + HOUR_S  # the first hour has no hour before it in the month
            previous = load.get(first)
            while t < end:
                if previous is not None:
                    peak_mw = max(peak_mw, previous)
                if hour_ending(t) in wanted:
                    if previous is None:
                        raise PriceFileError(
                            path, f"no ERCOT load for {label(t - HOUR_S)}, which the causal 4CP "
                            f"rule needs for {label(t)}")  # fmt: skip
                    if previous >= threshold * peak_mw:
                        off.append(t)
                previous = load.get(t)
                t += HOUR_S
    return off


def _load_row(row: dict[str, str]) -> tuple[float, float]:
    """(hour start, TOTAL MW) of an NP6-346-CD row. Raises ValueError."""
    match = _DATE.fullmatch(row["OperDay"])
    if match is None:
        raise ValueError(f"OperDay {row['OperDay']!r} is not MM/DD/YYYY")
    month, mday, year = (int(part) for part in match.groups())
    hour = _HHMM.fullmatch(row["HourEnding"])
    if hour is None or hour.group(2) != "00":
        raise ValueError(f"HourEnding {row['HourEnding']!r} is not like 01:00 .. 24:00")
    if row["DSTFlag"] not in ("Y", "N"):
        raise ValueError(f"DSTFlag {row['DSTFlag']!r} is not Y or N")
    repeated = row["DSTFlag"] == "Y"
    return hour_start_epoch(date(year, month, mday), int(hour.group(1)), repeated), float(
        row["TOTAL"]
    )


def _month_start_epoch(year: int, month: int) -> float:
    """Midnight Central on the first of the month (month 13: January of the next year)."""
    return day_start_epoch(date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1))


def _clock(day: date, text: str) -> float:
    match = _HHMM.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    moment = datetime.combine(day, time()) + timedelta(hours=hours, minutes=minutes)
    return central_to_epoch(moment, False)


def _dict_rows(
    path: str | Path, columns: tuple[str, ...], layout: str
) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            names = [name.strip() for name in next(reader, [])]
            if not set(columns) <= set(names):
                raise PriceFileError(
                    path,
                    f"unknown CSV layout, header {','.join(names) or '(empty file)'}; expected "
                    f"{layout}: {','.join(columns)},...",
                    1,
                )
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(names):
                    raise PriceFileError(
                        path, f"expected {len(names)} fields, got {len(fields)}", reader.line_num
                    )
                yield reader.line_num, {n: f.strip() for n, f in zip(names, fields, strict=True)}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PriceFileError(path, f"cannot read: {exc}") from None
