"""The two ERCOT reports the feeder polls: endpoint, time-window filter, and the records of an
answer as the daemon will read them.

A row is checked with the daemon's own parser (controller.feeds.price), so the feeder publishes
only what the daemon accepts, and the record time it orders by is the daemon's: the interval
start of NP6-905-CD, the SCEDTimestamp of NP6-788-CD, both absolute (DST flags honoured).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.config_model import ErcotProduct
from controller.feeds.common import FeedRejected
from controller.feeds.ercot import CENTRAL
from controller.feeds.price import parse_price_record

PATHS: dict[ErcotProduct, str] = {
    "np6-905-cd": "/np6-905-cd/spp_node_zone_hub",
    "np6-788-cd": "/np6-788-cd/lmp_node_zone_hub",
}


@dataclass(frozen=True, slots=True)
class Record:
    at_s: float  # record time, epoch seconds
    price: float
    row: dict[str, Any]  # the API's fields, published as they came


def window_params(
    product: ErcotProduct, point: str, since_s: float, until_s: float
) -> dict[str, str]:
    """The filter for one settlement point's records from `since_s` to `until_s`.

    NP6-905-CD filters by delivery date (whole Central days); NP6-788-CD by SCEDTimestamp,
    naive Central time as the API takes it. Both are inclusive; the caller drops what it has.
    """
    start = datetime.fromtimestamp(since_s, CENTRAL).replace(tzinfo=None)
    end = datetime.fromtimestamp(until_s, CENTRAL).replace(tzinfo=None)
    if product == "np6-905-cd":
        return {"settlementPoint": point, "deliveryDateFrom": start.date().isoformat(),
                "deliveryDateTo": end.date().isoformat()}  # fmt: skip
    return {"settlementPoint": point, "SCEDTimestampFrom": start.isoformat(timespec="seconds"),
            "SCEDTimestampTo": end.isoformat(timespec="seconds")}  # fmt: skip


def records(
    names: list[str], rows: list[list[Any]], point: str, now_s: float
) -> tuple[list[Record], list[str]]:
    """The point's valid records sorted by time (the last of a time wins), and a problem for
    each row the daemon would reject."""
    by_time: dict[float, Record] = {}
    problems: list[str] = []
    for i, values in enumerate(rows):
        row = dict(zip(names, values, strict=True))
        try:
            parsed = parse_price_record(row, now_s)
        except FeedRejected as exc:
            problems.append(f"row {i}: {exc.reason}: {exc.detail}")
            continue
        if parsed.settlement_point == point:
            by_time[parsed.interval_start] = Record(
                parsed.interval_start, parsed.price_usd_per_mwh, row
            )
    return sorted(by_time.values(), key=lambda r: r.at_s), problems
