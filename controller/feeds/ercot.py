"""ERCOT time conventions and the CSV layouts of reports NP6-905-CD and NP4-190-CD.

ERCOT stamps intervals in Central prevailing time by hour ending (1-24) with a DST flag that
marks the second pass through the repeated fall-back hour; on the spring-forward day hour
ending 03 does not exist. Everything here turns those stamps into absolute epoch seconds, so
the rest of the controller never handles local time.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Generator, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from controller.errors import CurtaildError
from controller.feeds.common import INSTANT_MAX_S, INSTANT_MIN_S, INSTANT_WINDOW
from controller.model import PriceProduct, PriceRecord

CENTRAL = ZoneInfo("America/Chicago")
# Far outside ERCOT's offer caps (-$251 .. $5,000; $9,000 in 2021): only garbage lands outside.
PRICE_MIN_USD_PER_MWH = -10_000.0
PRICE_MAX_USD_PER_MWH = 100_000.0

# Central-time years whose stamps can fall inside the feeds' instant window (2000 .. 2100 UTC).
# Checked before converting: a stamp of year 1 or 9999 overflows datetime on the way to UTC.
CENTRAL_WINDOW_YEARS = range(1999, 2100)

COLUMNS_905 = (
    "DeliveryDate",
    "DeliveryHour",
    "DeliveryInterval",
    "SettlementPointName",
    "SettlementPointType",
    "SettlementPointPrice",
    "DSTFlag",
)
COLUMNS_190 = ("DeliveryDate", "HourEnding", "SettlementPoint", "SettlementPointPrice", "DSTFlag")
Layout = Literal["NP6-905-CD", "NP4-190-CD"]

_PRICE_TEXT = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_DATE_TEXT = re.compile(r"(\d\d)/(\d\d)/(\d{4})")
_HOUR_ENDING_TEXT = re.compile(r"(\d\d):00")


class PriceFileError(CurtaildError):
    """A price CSV that cannot be used as a whole: names the file, the line and the fix."""

    exit_code = 2

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def central_to_epoch(local: datetime, second_occurrence: bool) -> float:
    """Naive Central prevailing time as epoch seconds.

    `second_occurrence` picks the second pass through the repeated fall-back hour (ERCOT's
    DSTFlag / repeatHourFlag) and is refused anywhere else, as is a time inside the
    spring-forward gap: both mean the stamp is wrong, and guessing would misplace a price.
    Raises ValueError.
    """
    aware = local.replace(tzinfo=CENTRAL, fold=1 if second_occurrence else 0)
    try:
        round_trip = aware.astimezone(UTC).astimezone(CENTRAL).replace(tzinfo=None, fold=0)
    except OverflowError:  # 9999-12-31 evening in Central is year 10000 in UTC
        raise ValueError(f"{local:%Y-%m-%d %H:%M} is beyond the range of datetime") from None
    if round_trip != local.replace(fold=0):
        raise ValueError(f"{local:%Y-%m-%d %H:%M} does not exist in Central time (spring-forward)")
    if second_occurrence and aware.utcoffset() == aware.replace(fold=0).utcoffset():
        raise ValueError(
            f"DST flag set but {local:%Y-%m-%d %H:%M} is not in the repeated fall-back hour"
        )
    return aware.timestamp()


def interval_start_epoch(
    delivery_date: date, hour_ending: int, interval: int, dst_flag: bool
) -> float:
    """Start of an ERCOT settlement interval: date + (hour-1) h + (interval-1) x 15 min, Central.

    Raises ValueError for hour_ending outside 1-24, interval outside 1-4, the nonexistent
    spring-forward hour and a DST flag outside the repeated hour.
    """
    if not 1 <= hour_ending <= 24:
        raise ValueError(f"hour ending {hour_ending} is outside 1-24")
    if not 1 <= interval <= 4:
        raise ValueError(f"interval {interval} is outside 1-4")
    local = datetime.combine(delivery_date, time()) + timedelta(
        hours=hour_ending - 1, minutes=15 * (interval - 1)
    )
    return central_to_epoch(local, dst_flag)


def file_interval_start_epoch(
    delivery_date: date, hour_ending: int, interval: int, dst_flag: bool
) -> float:
    """`interval_start_epoch` inside the instant window of the feeds (2000 .. 2100 UTC).

    A file's row outside it is a wrong date, not history: ERCOT's reports start in 2010.
    Raises ValueError.
    """
    # Years far outside are refused before converting: 9999-12-31 in Central overflows datetime.
    in_years = 1999 <= delivery_date.year <= 2099
    start = (
        interval_start_epoch(delivery_date, hour_ending, interval, dst_flag) if in_years else 0.0
    )
    if not INSTANT_MIN_S <= start < INSTANT_MAX_S:
        raise ValueError(
            f"{delivery_date} hour ending {hour_ending} interval {interval} "
            f"is outside {INSTANT_WINDOW}"
        )
    return start


def record_905_start_epoch(record: Mapping[str, Any]) -> float:
    """Interval start of a record from `iter_905_rows` (for a replayer's schedule)."""
    return interval_start_epoch(
        date.fromisoformat(record["deliveryDate"]),
        record["deliveryHour"],
        record["deliveryInterval"],
        record["DSTFlag"],
    )


# One parsed CSV row: (point, point type, delivery date, hour ending, interval, DST, price).
_Row = tuple[str, str, date, int, int, bool, float]


class _Reader:
    """Walks a price CSV row by row, turning every problem into a PriceFileError with a line."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._dates: dict[str, date] = {}  # one file has few distinct dates: parse each once

    def rows(self) -> Iterator[tuple[Layout, int, _Row]]:
        try:
            with Path(self.path).open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                layout, index = self._header(next(reader, None))
                for fields in reader:
                    if not fields:  # blank lines, e.g. a trailing one
                        continue
                    line = reader.line_num
                    if len(fields) != len(index):
                        raise PriceFileError(
                            self.path, f"expected {len(index)} fields, got {len(fields)}", line
                        )
                    try:
                        row = self._row(layout, fields, index)
                    except ValueError as exc:
                        raise PriceFileError(self.path, str(exc), line) from None
                    yield layout, line, row
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise PriceFileError(self.path, f"cannot read: {exc}") from None

    def _header(self, header: list[str] | None) -> tuple[Layout, dict[str, int]]:
        names = [name.strip() for name in header or []]
        layouts: tuple[tuple[Layout, tuple[str, ...]], ...] = (
            ("NP6-905-CD", COLUMNS_905),
            ("NP4-190-CD", COLUMNS_190),
        )
        for layout, expected in layouts:
            if set(expected) <= set(names) and len(set(names)) == len(names):
                return layout, {name: names.index(name) for name in names}
        raise PriceFileError(
            self.path,
            f"unknown CSV layout, header {','.join(names) or '(empty file)'}; expected "
            f"NP6-905-CD: {','.join(COLUMNS_905)} or NP4-190-CD: {','.join(COLUMNS_190)}",
            1,
        )

    def _row(self, layout: Layout, fields: list[str], index: dict[str, int]) -> _Row:
        day = self._date(fields[index["DeliveryDate"]].strip())
        if layout == "NP6-905-CD":
            point = fields[index["SettlementPointName"]].strip()
            point_type = fields[index["SettlementPointType"]].strip()
            hour = _small_int(fields[index["DeliveryHour"]], "DeliveryHour")
            interval = _small_int(fields[index["DeliveryInterval"]], "DeliveryInterval")
        else:
            point, point_type, interval = fields[index["SettlementPoint"]].strip(), "", 1
            text = fields[index["HourEnding"]].strip()
            match = _HOUR_ENDING_TEXT.fullmatch(text)
            if match is None:
                raise ValueError(f"HourEnding {text!r} is not like 01:00 .. 24:00")
            hour = int(match.group(1))
        if not point:
            raise ValueError("empty settlement point")
        flag = fields[index["DSTFlag"]].strip()
        if flag not in ("Y", "N"):
            raise ValueError(f"DSTFlag {flag!r} is not Y or N")
        price_text = fields[index["SettlementPointPrice"]].strip()
        if _PRICE_TEXT.fullmatch(price_text) is None:
            raise ValueError(f"SettlementPointPrice {price_text!r} is not a number")
        price = float(price_text)
        if not (math.isfinite(price) and PRICE_MIN_USD_PER_MWH <= price <= PRICE_MAX_USD_PER_MWH):
            raise ValueError(
                f"SettlementPointPrice {price_text} is outside "
                f"[{PRICE_MIN_USD_PER_MWH:g}, {PRICE_MAX_USD_PER_MWH:g}]"
            )
        return point, point_type, day, hour, interval, flag == "Y", price

    def _date(self, text: str) -> date:
        day = self._dates.get(text)
        if day is None:
            match = _DATE_TEXT.fullmatch(text)
            if match is None:
                raise ValueError(f"DeliveryDate {text!r} is not MM/DD/YYYY")
            month, mday, year = (int(part) for part in match.groups())
            try:
                day = date(year, month, mday)
            except ValueError:
                raise ValueError(f"DeliveryDate {text!r} is not a calendar date") from None
            self._dates[text] = day
        return day


def _small_int(text: str, column: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 2):
        raise ValueError(f"{column} {text!r} is not a whole number")
    return int(text)


def read_price_csv(
    path: str | Path, settlement_point: str, start: date | None = None, end: date | None = None
) -> list[PriceRecord]:
    """Every price of one settlement point, sorted by time, from an NP6-905-CD or NP4-190-CD CSV.

    `start` and `end` are inclusive delivery dates. The whole file is validated, not only the
    selected rows: a bad row anywhere means the file is not what it claims to be. Raises
    PriceFileError for an unknown layout, a bad or duplicated row, a settlement point absent
    from the file, or a date range holding none of its rows.
    """
    if start is not None and end is not None and start > end:
        raise PriceFileError(path, f"start {start} is after end {end}")
    reader = _Reader(path)
    records: list[PriceRecord] = []
    first_line_by_start: dict[float, int] = {}
    points: set[str] = set()
    point_days: list[date] = []
    epochs: dict[tuple[date, int, int, bool], float] = {}  # shared by every point of a time
    for layout, line, (point, _, day, hour, interval, dst, price) in reader.rows():
        key = (day, hour, interval, dst)
        epoch = epochs.get(key)
        if epoch is None:
            try:
                epoch = file_interval_start_epoch(day, hour, interval, dst)
            except ValueError as exc:
                raise PriceFileError(path, str(exc), line) from None
            epochs[key] = epoch
        points.add(point)
        if point != settlement_point:
            continue
        point_days.append(day)
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        if epoch in first_line_by_start:
            raise PriceFileError(
                path,
                f"duplicate row for {point} at {day} hour {hour} interval {interval} "
                f"(first at line {first_line_by_start[epoch]})",
                line,
            )
        first_line_by_start[epoch] = line
        product: PriceProduct = "rt_spp" if layout == "NP6-905-CD" else "dam_spp"
        records.append(PriceRecord(product, point, epoch, price))
    if not point_days:
        shown = sorted(points)
        more = f" and {len(shown) - 40} more" if len(shown) > 40 else ""
        listing = ", ".join(shown[:40]) + more
        raise PriceFileError(
            path,
            f"settlement point {settlement_point!r} not in file; present: {listing or '(none)'}",
        )
    if not records:
        raise PriceFileError(
            path,
            f"no rows for {settlement_point} between {start or 'the start'} and "
            f"{end or 'the end'}; the file covers {min(point_days)} to {max(point_days)}",
        )
    records.sort(key=lambda record: record.interval_start)
    return records


def iter_905_rows(path: str | Path) -> Generator[dict[str, Any], None, None]:
    """Stream an NP6-905-CD CSV as the JSON records of CONTRACT 2.1, in file order.

    Each row is validated (time included) before it is yielded; a bad row raises
    PriceFileError when the iteration reaches it, so a replayer never publishes garbage.
    A replayer that stops early should `close()` the generator to release the file.
    """
    checked_key: tuple[date, int, int, bool] | None = None  # rows of one interval are adjacent
    for layout, line, (point, point_type, day, hour, interval, dst, price) in _Reader(path).rows():
        if layout != "NP6-905-CD":
            raise PriceFileError(path, f"expected an NP6-905-CD file, this is {layout}", 1)
        if (day, hour, interval, dst) != checked_key:
            try:
                file_interval_start_epoch(day, hour, interval, dst)
            except ValueError as exc:
                raise PriceFileError(path, str(exc), line) from None
            checked_key = (day, hour, interval, dst)
        yield {
            "deliveryDate": day.isoformat(),
            "deliveryHour": hour,
            "deliveryInterval": interval,
            "settlementPoint": point,
            "settlementPointType": point_type,
            "settlementPointPrice": price,
            "DSTFlag": dst,
        }
