"""The report data behind the fake ERCOT public API (controller/sim/ercot_api.py).

Two reports, shaped as ERCOT's published OpenAPI spec (github.com/ercot/api-specs,
pubapi/pubapi-apim-api.json) and its live responses describe them: NP6-905-CD
`spp_node_zone_hub` (15-minute real-time settlement point prices) and NP6-788-CD
`lmp_node_zone_hub` (SCED LMPs, about every 5 minutes). Each record has the wall time it was
posted: the API serves a record only once that time has passed, and tests measure the feeder's
latency from it. Prices are synthetic but deterministic (a function of the record's time and
point), so a test can predict them; `post` adds or corrects one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from controller.feeds.ercot import CENTRAL

Product = Literal["np6-905-cd", "np6-788-cd"]
PRODUCTS: tuple[Product, ...] = ("np6-905-cd", "np6-788-cd")
INTERVAL_S = 900.0  # NP6-905-CD
SCED_EVERY_S = 300.0  # NP6-788-CD, nominal
SCED_OFFSET_S = 12.0  # SCED runs stamp a few seconds past the 5 minutes (2024-01-16T18:20:12)

# (name, dataType) in the order the live API lists them.
FIELDS: dict[Product, tuple[tuple[str, str], ...]] = {
    "np6-905-cd": (
        ("deliveryDate", "DATE"),
        ("deliveryHour", "INTEGER"),
        ("deliveryInterval", "INTEGER"),
        ("settlementPoint", "STRING"),
        ("settlementPointType", "STRING"),
        ("settlementPointPrice", "DOUBLE"),
        ("DSTFlag", "BOOLEAN"),
    ),
    "np6-788-cd": (
        ("SCEDTimestamp", "DATETIME"),
        ("repeatHourFlag", "BOOLEAN"),
        ("settlementPoint", "STRING"),
        ("LMP", "DOUBLE"),
    ),
}
REPORTS: dict[Product, dict[str, str]] = {
    "np6-905-cd": {
        "reportName": "spp_node_zone_hub",
        "reportDisplayName": "Settlement Point Prices at Resource Nodes, Hubs and Load Zones",
        "reportId": "12301",
        "reportEMIL": "NP6-905-CD",
    },
    "np6-788-cd": {
        "reportName": "lmp_node_zone_hub",
        "reportDisplayName": "LMPs by Resource Nodes, Load Zones and Trading Hubs",
        "reportId": "12300",
        "reportEMIL": "NP6-788-CD",
    },
}
POINT_TYPES = {"HB_": "HU", "LZ_": "LZ"}


@dataclass(slots=True)
class FakeRecord:
    product: Product
    point: str
    at_s: float  # interval start (905) or SCED timestamp (788), epoch seconds
    price: float
    posted_at_s: float  # wall time from which the API serves it

    def row(self) -> dict[str, Any]:
        """The record as the API's fields name it (naive Central time, DST flag)."""
        local = datetime.fromtimestamp(self.at_s, CENTRAL)
        repeated = local.fold == 1  # the second pass through the fall-back hour
        if self.product == "np6-905-cd":
            return {
                "deliveryDate": local.date().isoformat(),
                "deliveryHour": local.hour + 1,
                "deliveryInterval": local.minute // 15 + 1,
                "settlementPoint": self.point,
                "settlementPointType": POINT_TYPES.get(self.point[:3], "RN"),
                "settlementPointPrice": self.price,
                "DSTFlag": repeated,
            }
        return {
            "SCEDTimestamp": local.replace(tzinfo=None).isoformat(timespec="seconds"),
            "repeatHourFlag": repeated,
            "settlementPoint": self.point,
            "LMP": self.price,
        }


def synthetic_price(product: Product, point: str, at_s: float) -> float:
    """A plausible, deterministic price: a daily shape plus a per-point offset, in cents."""
    hour = (at_s / 3600.0) % 24
    base = 35.0 + 25.0 * math.sin((hour - 8.0) / 24.0 * 2 * math.pi)
    offset = sum(point.encode()) % 7 + (1.5 if product == "np6-788-cd" else 0.0)
    return round(base + offset + 3.0 * math.sin(at_s / 1234.5), 2)


class RecordStore:
    """Every posted record of both reports, in posting order; `visible` filters by wall time."""

    def __init__(self, points: tuple[str, ...]) -> None:
        self.points = points
        self._records: dict[tuple[Product, str, float], FakeRecord] = {}

    def post(
        self,
        product: Product,
        point: str,
        at_s: float,
        posted_at_s: float,
        price: float | None = None,
    ) -> FakeRecord:
        """Add a record, or correct one (same product, point and time: new price, new post)."""
        if price is None:
            price = synthetic_price(product, point, at_s)
        record = FakeRecord(product, point, at_s, price, posted_at_s)
        self._records.pop((product, point, at_s), None)  # a correction moves to the end
        self._records[(product, point, at_s)] = record
        return record

    def post_interval(self, product: Product, at_s: float, posted_at_s: float) -> None:
        """One record per point for one time."""
        for point in self.points:
            self.post(product, point, at_s, posted_at_s)

    def seed(self, now_s: float, hours: float, post_delay_s: float) -> None:
        """History at ERCOT's cadence: every interval and SCED run of the last `hours` that
        has been posted by `now_s` (905 after its interval ends, 788 after its run)."""
        first = math.floor((now_s - hours * 3600.0) / INTERVAL_S) * INTERVAL_S
        at = first
        while at + INTERVAL_S + post_delay_s <= now_s:
            self.post_interval("np6-905-cd", at, at + INTERVAL_S + post_delay_s)
            at += INTERVAL_S
        at = first + SCED_OFFSET_S
        while at + post_delay_s <= now_s:
            self.post_interval("np6-788-cd", at, at + post_delay_s)
            at += SCED_EVERY_S

    def visible(self, product: Product, now_s: float) -> list[FakeRecord]:
        return [
            r for r in self._records.values() if r.product == product and r.posted_at_s <= now_s
        ]

    def find(self, product: Product, point: str, at_s: float) -> FakeRecord | None:
        return self._records.get((product, point, at_s))

    def latest(self, product: Product) -> float | None:
        times = [r.at_s for r in self._records.values() if r.product == product]
        return max(times) if times else None
