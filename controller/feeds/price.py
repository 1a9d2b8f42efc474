"""Price feed payloads (CONTRACT 2.1, section 7 Prices) and the book that picks the acting price.

Accepted: one NP6-905-CD record, one NP6-788-CD record, or the ERCOT public-API envelope
`{"fields":[{"name":...},...],"data":[[...],...]}` of either. Records are told apart by their
field names; keys beyond those named here are ignored, as the public API adds some.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import date, datetime
from typing import Any

from controller.feeds.common import (
    FeedRejected,
    as_bool,
    as_id,
    as_int,
    as_str,
    instant_in_window,
    load_json,
    number_in,
    outside_window,
    require,
    shown,
    type_name,
)
from controller.feeds.ercot import (
    CENTRAL_WINDOW_YEARS,
    PRICE_MAX_USD_PER_MWH,
    PRICE_MIN_USD_PER_MWH,
    central_to_epoch,
    interval_start_epoch,
)
from controller.model import ActingPrice, PriceProduct, PriceRecord

# A record this far ahead of our clock is either mis-stamped or from a wrong clock; a real-time
# price is published after its interval starts, so an hour covers any sane clock skew.
MAX_AHEAD_S = 3600.0
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Live hashprice has stayed within $30-$1,000/PH/day since 2016; 100x the peak is still a
# number the breakeven arithmetic keeps finite, and anything above it is a unit error.
MAX_HASHPRICE_USD_PER_PH_DAY = 100_000.0


def parse_price_payload(payload: bytes, now: float) -> list[PriceRecord]:
    """Every price record of one MQTT message; raise FeedRejected if any part is invalid.

    An envelope with one bad row is rejected whole: acting on part of a message whose
    producer is evidently broken would hide the fault.
    """
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise FeedRejected(
            "unknown_shape", f"expected a price record or envelope object, got {type_name(obj)}"
        )
    if "fields" in obj or "data" in obj:
        return _parse_envelope(obj, now)
    return [parse_price_record(obj, now)]


def _parse_envelope(obj: dict[str, Any], now: float) -> list[PriceRecord]:
    fields, data = obj.get("fields"), obj.get("data")
    if not isinstance(fields, list) or not isinstance(data, list):
        raise FeedRejected(
            "unknown_shape", "envelope needs both a 'fields' array and a 'data' array"
        )
    names: list[str] = []
    for i, field in enumerate(fields):
        name = field.get("name") if isinstance(field, dict) else None
        if not isinstance(name, str) or not name:
            raise FeedRejected("unknown_shape", f"fields[{i}]: expected an object with a 'name'")
        if name in names:
            raise FeedRejected("unknown_shape", f"fields[{i}]: duplicate field name {shown(name)}")
        names.append(name)
    records: list[PriceRecord] = []
    for i, row in enumerate(data):
        try:
            records.append(_parse_row(names, row, now))
        except FeedRejected as exc:
            raise FeedRejected(
                exc.reason, f"data[{i}]: {exc.detail} (whole message rejected)"
            ) from None
    return records


def _parse_row(names: list[str], row: Any, now: float) -> PriceRecord:
    if not isinstance(row, list) or len(row) != len(names):
        raise FeedRejected(
            "unknown_shape", f"expected an array of {len(names)} values like 'fields'"
        )
    return parse_price_record(dict(zip(names, row, strict=True)), now)


def parse_price_record(obj: dict[str, Any], now: float) -> PriceRecord:
    """One decoded NP6-905-CD or NP6-788-CD record, told apart by its field names."""
    is_905 = "deliveryInterval" in obj or "deliveryHour" in obj
    is_788 = "SCEDTimestamp" in obj
    if is_905 == is_788:
        raise FeedRejected(
            "unknown_shape",
            "expected an NP6-905-CD record (deliveryDate, deliveryHour, deliveryInterval, "
            "settlementPoint, settlementPointPrice, DSTFlag) or an NP6-788-CD record "
            f"(SCEDTimestamp, repeatHourFlag, settlementPoint, LMP); got keys {_keys(obj)}",
        )
    record = _parse_905(obj) if is_905 else _parse_788(obj)
    ahead_s = record.interval_start - now
    if ahead_s > MAX_AHEAD_S:
        raise FeedRejected(
            "future",
            f"record time is {ahead_s:.0f} s ahead of now (limit {MAX_AHEAD_S:.0f} s); "
            "check the producer's clock and date fields",
        )
    return record


def _keys(obj: dict[str, Any]) -> str:
    """The first keys of an object, for a detail (a message may carry thousands)."""
    keys = ", ".join(shown(key) for key in sorted(obj)[:10])
    return f"{keys}{', ...' if len(obj) > 10 else ''}"


def _price(value: Any, key: str) -> float:
    return number_in(value, key, PRICE_MIN_USD_PER_MWH, PRICE_MAX_USD_PER_MWH)


def _parse_905(obj: dict[str, Any]) -> PriceRecord:
    date_text = as_str(require(obj, "deliveryDate"), "deliveryDate")
    delivery_date = _iso_date(date_text)
    if delivery_date is None:
        raise FeedRejected(
            "bad_field", f"deliveryDate: expected YYYY-MM-DD, got {shown(date_text)}"
        )
    hour = as_int(require(obj, "deliveryHour"), "deliveryHour")
    interval = as_int(require(obj, "deliveryInterval"), "deliveryInterval")
    if not 1 <= hour <= 24:
        raise FeedRejected("out_of_range", f"deliveryHour: {hour} is outside 1-24")
    if not 1 <= interval <= 4:
        raise FeedRejected("out_of_range", f"deliveryInterval: {interval} is outside 1-4")
    point = as_id(require(obj, "settlementPoint"), "settlementPoint")
    point_type = obj.get("settlementPointType")
    if point_type is not None and point_type != "":  # informative only: HU, LZ, RN, ...
        as_id(point_type, "settlementPointType")
    price = _price(require(obj, "settlementPointPrice"), "settlementPointPrice")
    dst = as_bool(require(obj, "DSTFlag"), "DSTFlag")
    when = f"{date_text} hour {hour} interval {interval}"
    if delivery_date.year not in CENTRAL_WINDOW_YEARS:
        raise outside_window("deliveryDate", when)
    try:
        start = interval_start_epoch(delivery_date, hour, interval, dst)
    except ValueError as exc:
        raise FeedRejected("bad_field", f"deliveryDate/deliveryHour/DSTFlag: {exc}") from None
    return PriceRecord("rt_spp", point, instant_in_window(start, "deliveryDate", when), price)


def _iso_date(text: str) -> date | None:
    # date.fromisoformat also takes 20240116 and week dates; ERCOT sends only YYYY-MM-DD.
    if _ISO_DATE.fullmatch(text) is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2024-02-30
        return None


def _parse_788(obj: dict[str, Any]) -> PriceRecord:
    text = as_str(require(obj, "SCEDTimestamp"), "SCEDTimestamp")
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise FeedRejected(
            "bad_field", f"SCEDTimestamp: expected like 2024-01-16T18:20:12, got {shown(text)}"
        ) from None
    if local.tzinfo is not None:
        # ERCOT sends naive Central time and disambiguates with repeatHourFlag; an offset here
        # means the producer changed the format, and the two could disagree.
        raise FeedRejected(
            "bad_field",
            f"SCEDTimestamp: must be naive Central time as ERCOT sends it: {shown(text)}",
        )
    repeat = as_bool(require(obj, "repeatHourFlag"), "repeatHourFlag")
    point = as_id(require(obj, "settlementPoint"), "settlementPoint")
    price = _price(require(obj, "LMP"), "LMP")
    if local.year not in CENTRAL_WINDOW_YEARS:
        raise outside_window("SCEDTimestamp", text)
    try:
        at = central_to_epoch(local, repeat)
    except ValueError as exc:
        raise FeedRejected("bad_field", f"SCEDTimestamp/repeatHourFlag: {exc}") from None
    return PriceRecord("sced_lmp", point, instant_in_window(at, "SCEDTimestamp", text), price)


class PriceBook:
    """The acting price for one settlement point (CONTRACT 2.1).

    The record with the latest time across products acts; a record with the same time
    replaces it (ERCOT corrections, and a SCED record stamped at a 905 interval start); an
    older record is kept in the bounded history but does not act. Records for other
    settlement points are counted in `ignored_other_points` and otherwise ignored.
    """

    def __init__(self, settlement_point: str, history_len: int = 96) -> None:
        if history_len < 1:
            raise ValueError("history_len must be >= 1")
        self.settlement_point = settlement_point
        self.ignored_other_points = 0
        self._history_len = history_len
        self._acting: ActingPrice | None = None
        self._latest: dict[PriceProduct, PriceRecord] = {}
        self._history: dict[PriceProduct, deque[PriceRecord]] = {}

    def accepts(self, record: PriceRecord) -> bool:
        """Whether the record is for this book's settlement point."""
        return record.settlement_point == self.settlement_point

    def offer(self, record: PriceRecord, received_at: float) -> bool:
        """Record a price; True when it became the acting price.

        True also for a same-time record with an equal value: its arrival refreshes the
        price's age, which can end a `price_stale` failsafe, so the caller should decide.
        """
        if not self.accepts(record):
            self.ignored_other_points += 1
            return False
        history = self._history.setdefault(record.product, deque(maxlen=self._history_len))
        history.append(record)
        latest = self._latest.get(record.product)
        if latest is None or record.interval_start >= latest.interval_start:
            self._latest[record.product] = record
        if self._acting is not None and record.interval_start < self._acting.interval_start:
            return False
        self._acting = ActingPrice(
            record.price_usd_per_mwh, record.interval_start, received_at, record.product
        )
        return True

    @property
    def acting(self) -> ActingPrice | None:
        return self._acting

    def latest_by_product(self) -> dict[PriceProduct, PriceRecord]:
        """The newest record (by record time) of each product seen, for metrics."""
        return dict(self._latest)

    def history(self, product: PriceProduct) -> tuple[PriceRecord, ...]:
        """The last `history_len` records of a product in arrival order, older ones included."""
        return tuple(self._history.get(product, ()))


def parse_hashprice(payload: bytes) -> float:
    """Live hashprice in USD/PH/day: `{"usd_per_ph_day": 48.2}` or a bare JSON number, > 0."""
    obj = load_json(payload)
    if isinstance(obj, dict):
        value = require(obj, "usd_per_ph_day")
        key = "usd_per_ph_day"
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        value, key = obj, "hashprice"
    else:
        raise FeedRejected(
            "unknown_shape",
            f'expected {{"usd_per_ph_day": <number>}} or a number, got {type_name(obj)}',
        )
    number = number_in(value, key, 0.0, MAX_HASHPRICE_USD_PER_PH_DAY)
    if number <= 0:
        raise FeedRejected("out_of_range", f"{key}: must be > 0, got {number:g}")
    return number
