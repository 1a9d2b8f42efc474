"""Replays ERCOT NP6-905-CD prices over MQTT at an accelerated rate (demo, tests, benchmarks).

Each 15-minute interval takes `seconds_per_interval` of wall time; every record of an interval
(one per selected settlement point) goes out together as one CONTRACT 2.1 JSON record. Gaps in
the data (the file holds only Januaries) are not replayed as silence: the next interval simply
follows. Record times stay as they were; the daemon acts on the latest record time, so replay
into a fresh state directory, or an older history will be recorded without acting.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Collection, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.adapters.mqtt import MqttSession
from controller.feeds.ercot import CENTRAL, iter_905_rows

DEFAULT_PRICE_BASE = "ercot/prices"


def price_topic_base(price_topic: str) -> str:
    """Where to publish for a `[feeds] price_topic` filter: "ercot/prices/#" -> "ercot/prices".

    "a/#" also matches "a" itself (MQTT 3.1.1, 4.7.1.2); a "+" level becomes "replay".
    """
    levels = price_topic.split("/")
    if levels and levels[-1] == "#":
        levels.pop()
    base = "/".join("replay" if level == "+" else level for level in levels)
    return base or DEFAULT_PRICE_BASE


def select_records(
    records: Iterable[dict[str, Any]],
    settlement_points: Collection[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of the given points (None: all) with delivery dates in [start, end]."""
    for record in records:
        if settlement_points is not None and record["settlementPoint"] not in settlement_points:
            continue
        day = date.fromisoformat(record["deliveryDate"])
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        yield record


class PriceReplayer:
    """Publishes `records` (in their order) on `session` to `topic`; `await run()` to replay."""

    def __init__(
        self,
        session: MqttSession,
        topic: str,
        records: Iterable[dict[str, Any]],
        *,
        seconds_per_interval: float = 1.0,
        retain: bool = False,
    ) -> None:
        self.session = session
        self.topic = topic
        self.seconds_per_interval = seconds_per_interval
        self.retain = retain
        self.published = 0
        self.last: dict[str, Any] | None = None
        self._records = records

    @classmethod
    def from_csv(
        cls,
        session: MqttSession,
        topic: str,
        path: str | Path,
        settlement_points: Collection[str] | None = ("HB_WEST",),
        start: date | None = None,
        end: date | None = None,
        *,
        seconds_per_interval: float = 1.0,
        retain: bool = False,
    ) -> PriceReplayer:
        """Replay an NP6-905-CD CSV; rows stream from disk, a bad row raises PriceFileError."""
        rows = select_records(iter_905_rows(path), settlement_points, start, end)
        return cls(session, topic, rows, seconds_per_interval=seconds_per_interval, retain=retain)

    async def run(self) -> int:
        """Publish every record on schedule; return how many were published."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        step = -1
        last_key: tuple[Any, ...] | None = None
        for record in self._records:
            key = (
                record["deliveryDate"],
                record["deliveryHour"],
                record["deliveryInterval"],
                record["DSTFlag"],
            )
            if key != last_key:
                step += 1
                last_key = key
                # Scheduled from the start, not from the last send: no drift over long replays.
                delay_s = started + step * self.seconds_per_interval - loop.time()
                # Always yield: at full speed (0 s per interval) the sender must keep up, or a
                # long file would block the loop and overflow the session's outbox.
                await asyncio.sleep(max(delay_s, 0.0))
            payload = json.dumps(record, separators=(",", ":"))
            self.session.publish(self.topic, payload, retain=self.retain)
            self.published += 1
            self.last = record
        return self.published


# (hour of day, $/MWh) anchors of the synthetic storm day, interpolated per interval: a cold
# morning ramp, a midday lull, and an evening scarcity spike like Winter Storm Heather's
# (2024-01-16, real HB_WEST peak $1,174.66) but steeper, to exercise curtailment and dispatch.
_STORM_ANCHORS = (
    (0.0, 62.0),
    (2.0, 48.0),
    (3.5, 41.0),
    (5.0, 75.0),
    (6.0, 180.0),
    (7.0, 420.0),
    (7.5, 960.0),
    (8.0, 610.0),
    (9.0, 240.0),
    (11.0, 115.0),
    (13.0, 88.0),
    (15.0, 130.0),
    (16.0, 310.0),
    (17.0, 690.0),
    (17.75, 1450.0),
    (18.25, 3120.0),
    (18.75, 2280.0),
    (19.5, 980.0),
    (20.5, 340.0),
    (22.0, 140.0),
    (24.0, 78.0),
)


def synthetic_storm_day(
    day: date = date(2024, 1, 16), settlement_point: str = "HB_WEST"
) -> Iterator[dict[str, Any]]:
    """96 NP6-905-CD records of a made-up winter storm day, for when no real file is present.

    SYNTHETIC: every record carries `"synthetic": true` (price parsers ignore extra keys) so it
    can never be mistaken for market data. Raises ValueError for a DST-change day (not 96
    intervals).
    """
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=CENTRAL)
    if midnight.utcoffset() != (midnight + timedelta(hours=23)).utcoffset():
        raise ValueError(f"{day} is a DST change day; pick a day with 96 intervals")
    for index in range(96):
        hour = index / 4
        # A fixed ripple instead of randomness: the same series every run.
        price = _interpolate(hour) * (1 + 0.04 * math.sin(7.3 * index))
        yield {
            "deliveryDate": day.isoformat(),
            "deliveryHour": index // 4 + 1,
            "deliveryInterval": index % 4 + 1,
            "settlementPoint": settlement_point,
            "settlementPointType": "HU",
            "settlementPointPrice": round(price, 2),
            "DSTFlag": False,
            "synthetic": True,
        }


def _interpolate(hour: float) -> float:
    for (h0, p0), (h1, p1) in itertools.pairwise(_STORM_ANCHORS):
        if h0 <= hour <= h1:
            return p0 + (p1 - p0) * (hour - h0) / (h1 - h0)
    return _STORM_ANCHORS[-1][1]
