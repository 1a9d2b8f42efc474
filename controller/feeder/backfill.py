"""`curtaild feed-ercot --backfill FROM TO --csv FILE`: the settlement point's price history
from ERCOT's public API in the NP6-905-CD CSV layout that `curtaild backtest --prices` reads.

NP6-905-CD rows are written as they are. With `--product np6-788-cd` the SCED LMPs are turned
into 15-minute rows of the same layout, each the mean of the SCED runs stamped in that interval
(an approximation of the settlement price: ERCOT weights runs by their duration). Pages are
fetched through the same request budget and retries as the feeder.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path

import aiohttp

from controller.config_model import Config, ErcotProduct
from controller.errors import CurtaildError
from controller.feeder.client import FetchError
from controller.feeder.metrics import FeedMetrics
from controller.feeder.products import PATHS, Record, records
from controller.feeds.ercot import CENTRAL, COLUMNS_905

logger = logging.getLogger(__name__)
INTERVAL_S = 900


def history_params(product: ErcotProduct, point: str, start: date, end: date) -> dict[str, str]:
    if product == "np6-905-cd":
        return {"settlementPoint": point, "deliveryDateFrom": start.isoformat(),
                "deliveryDateTo": end.isoformat()}  # fmt: skip
    last = datetime.combine(end, time(23, 59, 59))
    return {"settlementPoint": point, "SCEDTimestampFrom": f"{start.isoformat()}T00:00:00",
            "SCEDTimestampTo": last.isoformat(timespec="seconds")}  # fmt: skip


def rows_905(product: ErcotProduct, point: str, found: list[Record]) -> list[list[str]]:
    """CSV rows (COLUMNS_905 order) in time order."""
    if product == "np6-905-cd":
        return [_row(point, r.row.get("settlementPointType") or "", r.at_s, r.price) for r in found]
    by_interval: dict[float, list[float]] = defaultdict(list)
    for record in found:  # Central offsets are whole hours: UTC quarter-hours are Central ones
        by_interval[record.at_s // INTERVAL_S * INTERVAL_S].append(record.price)
    kind = {"HB_": "HU", "LZ_": "LZ"}.get(point[:3], "RN")
    return [
        _row(point, kind, at, round(sum(p) / len(p), 2)) for at, p in sorted(by_interval.items())
    ]


def _row(point: str, kind: str, at_s: float, price: float) -> list[str]:
    local = datetime.fromtimestamp(at_s, CENTRAL)
    return [local.strftime("%m/%d/%Y"), str(local.hour + 1), str(local.minute // 15 + 1), point,
            kind, f"{price:g}", "Y" if local.fold else "N"]  # fmt: skip


async def backfill_command(
    config: Config, product: ErcotProduct, start: date, end: date, csv_path: Path
) -> int:
    from controller.commands.feed_ercot import client_for  # noqa: PLC0415 (a cycle otherwise)

    if start > end:
        raise CurtaildError(f"--backfill: FROM {start} is after TO {end}")
    point = config.site.settlement_point
    now = datetime.now(CENTRAL).timestamp()
    found: list[Record] = []
    async with aiohttp.ClientSession() as session:
        client = client_for(config, session, FeedMetrics())
        day = start
        while day <= end:  # a week per query: a few pages each, progress in the log
            last = min(end, day + timedelta(days=6))
            try:
                names, rows = await client.fetch_all(
                    product, PATHS[product], history_params(product, point, day, last)
                )
            except FetchError as exc:
                raise CurtaildError(f"--backfill {day}..{last}: {exc}") from None
            got, problems = records(names, rows, point, now)
            for problem in problems[:5]:
                logger.warning("%s: row skipped: %s", product, problem)
            found += got
            logger.info("%s %s..%s: %d records", product, day, last, len(got))
            day = last + timedelta(days=1)
    if not found:
        raise CurtaildError(f"--backfill: ERCOT's API has no {product} records for {point} "
                            f"between {start} and {end}")  # fmt: skip
    out = rows_905(product, point, sorted(found, key=lambda r: r.at_s))
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS_905)
        writer.writerows(out)
    print(f"wrote {len(out)} rows of {point} ({product}) to {csv_path}")  # noqa: T201
    return 0
