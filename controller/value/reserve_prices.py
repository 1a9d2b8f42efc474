"""ERCOT's DAM clearing prices for capacity (MCPC, $/MW-h), hourly, in both of ERCOT's layouts.

- NP4-181-ER, the yearly archive, wide: `Delivery Date,Hour Ending,Repeated Hour Flag,REGDN,
  REGUP ,RRS,NSPIN[,ECRS]` (one column per product; the header's spaces are ERCOT's). The
  same without `Repeated Hour Flag` is accepted: such a file cannot hold the fall-back hour.
- NP4-188-CD, the daily report, long: `DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag`.

ERCOT's NSPIN is the NSRS of the dispatch feed. An empty price is a product with no market in
that hour (ECRS before 2023-06-10): no award, no revenue. Several files are merged (a year's
archive and the reports after it); an hour in two files is an error, as is a gap in one file.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from controller.feeds.ercot import PriceFileError
from controller.value.hours import find_gaps, hour_start_epoch, label

PRODUCTS = ("REGDN", "REGUP", "RRS", "NSRS", "ECRS")
_FILE_NAMES = {"NSPIN": "NSRS", "NSRS": "NSRS", "REGDN": "REGDN", "REGUP": "REGUP", "RRS": "RRS",
               "ECRS": "ECRS"}  # fmt: skip
WIDE = ("Delivery Date", "Hour Ending")
LONG = ("DeliveryDate", "HourEnding", "AncillaryType", "MCPC", "DSTFlag")
_DATE = re.compile(r"(\d\d)/(\d\d)/(\d{4})")
_HOUR = re.compile(r"(\d\d):00")
MCPC_MAX_USD_PER_MW_H = 100_000.0  # far above ERCOT's caps: only garbage lands outside


@dataclass
class ReservePrices:
    """Clearing prices by epoch hour start and product (None: no market that hour)."""

    prices: dict[float, dict[str, float | None]] = field(default_factory=dict)
    where: dict[float, tuple[str, int]] = field(default_factory=dict)  # hour -> (file, line)
    files: list[str] = field(default_factory=list)

    def coverage(self) -> str:
        if not self.prices:
            return "no hours"
        return f"{label(min(self.prices))} .. {label(max(self.prices))}"


def read_reserve_prices(paths: Sequence[str | Path]) -> ReservePrices:
    """Every file's hours merged. Raises PriceFileError (file and line) for an unknown layout, a
    bad, duplicated or negative price, a gap inside a file, or an hour in two files."""
    out = ReservePrices()
    for path in paths:
        out.files.append(Path(path).name)
        hours: dict[float, int] = {}
        flagless = False
        for line, epoch, product, price, has_flag in _rows(path):
            flagless = not has_flag
            first = out.where.get(epoch)
            if first is not None and (first[0] != str(path) or product in out.prices[epoch]):
                raise PriceFileError(
                    path, f"{label(epoch)} {product} already at {first[0]}:{first[1]}", line
                )
            out.where.setdefault(epoch, (str(path), line))
            out.prices.setdefault(epoch, {})[product] = price
            hours.setdefault(epoch, line)
        if not hours:
            raise PriceFileError(path, "no rows")
        gaps = find_gaps(hours.items(), min(hours), max(hours) + 3600.0, flagless)
        if gaps:
            raise PriceFileError(path, gaps[0].describe(), gaps[0].line)
    return out


def _rows(path: str | Path) -> Iterator[tuple[int, float, str, float | None, bool]]:
    """(line, hour start, product, price, whether the file has a DST flag) per price."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            names = [name.strip() for name in next(reader, [])]
            index = {name: k for k, name in enumerate(names)}
            wide = [n for n in names if n in _FILE_NAMES]
            if set(LONG) <= set(index):
                long = True
            elif set(WIDE) <= set(index) and wide:
                long = False
            else:
                raise PriceFileError(
                    path,
                    f"unknown CSV layout, header {','.join(names) or '(empty file)'}; expected "
                    f"NP4-181-ER: {','.join(WIDE)},Repeated Hour Flag,REGDN,REGUP,RRS,NSPIN,ECRS "
                    f"or NP4-188-CD: {','.join(LONG)}",
                    1,
                )
            flag_name = "DSTFlag" if long else "Repeated Hour Flag"
            for fields in reader:
                if not fields:
                    continue
                line = reader.line_num
                if len(fields) != len(names):
                    raise PriceFileError(
                        path, f"expected {len(names)} fields, got {len(fields)}", line
                    )
                try:
                    epoch = _hour(fields, index, long, flag_name)
                    if long:
                        kind = _product(fields[index["AncillaryType"]])
                        price = _price(fields[index["MCPC"]], "MCPC")
                        yield line, epoch, kind, price, True
                        continue
                    for name in wide:
                        price = _price(fields[index[name]], name)
                        yield line, epoch, _FILE_NAMES[name], price, flag_name in index
                except ValueError as exc:
                    raise PriceFileError(path, str(exc), line) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PriceFileError(path, f"cannot read: {exc}") from None


def _hour(fields: list[str], index: dict[str, int], long: bool, flag_name: str) -> float:
    date_text = fields[index["DeliveryDate" if long else "Delivery Date"]].strip()
    match = _DATE.fullmatch(date_text)
    if match is None:
        raise ValueError(f"delivery date {date_text!r} is not MM/DD/YYYY")
    month, mday, year = (int(part) for part in match.groups())
    try:
        day = date(year, month, mday)
    except ValueError:
        raise ValueError(f"delivery date {date_text!r} is not a calendar date") from None
    hour_text = fields[index["HourEnding" if long else "Hour Ending"]].strip()
    hour = _HOUR.fullmatch(hour_text)
    if hour is None:
        raise ValueError(f"hour ending {hour_text!r} is not like 01:00 .. 24:00")
    flag = fields[index[flag_name]].strip() if flag_name in index else "N"
    if flag not in ("Y", "N"):
        raise ValueError(f"{flag_name} {flag!r} is not Y or N")
    return hour_start_epoch(day, int(hour.group(1)), flag == "Y")


def _product(text: str) -> str:
    kind = text.strip()
    if kind not in _FILE_NAMES:
        raise ValueError(f"AncillaryType {kind!r} is not one of {', '.join(_FILE_NAMES)}")
    return _FILE_NAMES[kind]


def _price(text: str, column: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    try:
        price = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not (math.isfinite(price) and 0.0 <= price <= MCPC_MAX_USD_PER_MW_H):
        raise ValueError(f"{column} {text} is outside [0, {MCPC_MAX_USD_PER_MW_H:g}]")
    return price
