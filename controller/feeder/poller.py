"""The feeder's loop (CONTRACT 2.6): every `poll_s`, for each product, fetch the settlement
point's records since the last one published (less a correction look-back), and publish the
new and the corrected ones in time order, one per message, saving the state after each.

Nothing here exits on an HTTP, network or parse error: a failed poll is logged and counted,
`curtaild_feed_up` goes to 0, and the next poll tries again from the saved state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from controller.config_model import Config, ErcotProduct
from controller.feeder.client import ErcotClient, FetchError
from controller.feeder.metrics import FeedMetrics
from controller.feeder.products import PATHS, Record, records, window_params
from controller.feeder.state import FeedState
from controller.feeds.common import FeedRejected
from controller.feeds.price import parse_price_record

logger = logging.getLogger(__name__)

FIRST_START_S = 3600.0  # nothing kept: publish the last hour ...
FIRST_LOOK_S = 2 * 86400.0  # ... or, when it has none, the latest record of the last two days
CORRECTION_LOOKBACK_S = 1200.0  # re-read this far behind the last record to see corrections
AHEAD_S = 3600.0  # the window's end: now plus the daemon's own limit on future records


class Sink(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None: ...


class Poller:
    def __init__(
        self,
        config: Config,
        client: ErcotClient,
        sink: Sink,
        state: FeedState,
        metrics: FeedMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = config.ercot_api
        self._point = config.site.settlement_point
        self._client = client
        self._sink = sink
        self._state = state
        self._metrics = metrics
        self._clock = clock
        for product, kept in state.products.items():
            metrics.newest(product, kept.last_at_s)

    def adopt(self, retained: dict[str, bytes]) -> None:
        """Take the broker's retained record of each product as published when it is newer
        than the saved state: a kill -9 between the broker's PUBACK and the state save would
        otherwise send that record again after the restart."""
        for product in self._api.products:
            payload = retained.get(f"{self._api.publish_topic}/{product}")
            if not payload:
                continue
            try:
                row = json.loads(payload)
                parsed = parse_price_record(row, self._clock())
            except (ValueError, FeedRejected) as exc:  # not ours, or garbage: the state rules
                logger.warning("%s: retained record not used: %s", product, exc)
                continue
            kept = self._state.products.get(product)
            if parsed.settlement_point == self._point and (
                kept is None or parsed.interval_start > kept.last_at_s
            ):
                self._state.mark(product, parsed.interval_start, parsed.price_usd_per_mwh, row)
                self._state.save()
                self._metrics.newest(product, parsed.interval_start)
                logger.info("%s: the broker holds a newer record than the state: %s", product,
                            payload.decode(errors="replace"))  # fmt: skip

    async def run(self) -> None:
        """Poll forever at a fixed rate (a slow poll delays the next, never doubles it)."""
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self._api.poll_s - (time.monotonic() - started)))

    async def poll_once(self) -> bool:
        ok = True
        for product in self._api.products:
            try:
                await self._poll(product)
            except FetchError as exc:
                ok = False
                logger.warning("%s: poll failed (%s): %s", product, exc.status, exc)
            except Exception:  # a bug must not stop the prices: log it whole and go on
                ok = False
                logger.exception("%s: poll failed", product)
        self._metrics.up.set(1 if ok else 0)
        self._metrics.budget_used.set(self._client.budget.used())
        return ok

    async def _poll(self, product: ErcotProduct) -> None:
        now = self._clock()
        kept = self._state.products.get(product)
        since = now - FIRST_LOOK_S if kept is None else kept.last_at_s - CORRECTION_LOOKBACK_S
        names, rows = await self._client.fetch_all(
            product, PATHS[product], window_params(product, self._point, since, now + AHEAD_S)
        )
        found, problems = records(names, rows, self._point, self._clock())
        for problem in problems[:5]:
            logger.warning("%s: row not published: %s", product, problem)
        if problems:
            self._metrics.rejected.labels(product).inc(len(problems))
        chosen = self._select(product, found, now)
        topic = f"{self._api.publish_topic}/{product}"
        for record in chosen:
            await self._publish(product, topic, record)
        kept = self._state.products.get(product)
        if chosen and kept is not None and chosen[-1].at_s < kept.last_at_s:
            # Only corrections of older records went out: put the newest back on top, so the
            # retained message (what a restarting daemon reads first) is the latest price.
            newest = Record(kept.last_at_s, kept.recent.get(kept.last_at_s, 0.0), kept.last_row)
            await self._publish(product, topic, newest)
        if chosen:
            logger.info("%s: published %d record(s), newest %s", product, len(chosen),
                        json.dumps(chosen[-1].row))  # fmt: skip

    def _select(self, product: ErcotProduct, found: list[Record], now: float) -> list[Record]:
        kept = self._state.products.get(product)
        if kept is None:  # first start: the last hour, at least the latest record
            recent = [r for r in found if r.at_s >= now - FIRST_START_S]
            return recent or found[-1:]
        return [
            r for r in found
            if r.at_s > kept.last_at_s
            or (r.at_s in kept.recent and kept.recent[r.at_s] != r.price)  # a correction
        ]  # fmt: skip

    async def _publish(self, product: ErcotProduct, topic: str, record: Record) -> None:
        payload = json.dumps(record.row, separators=(",", ":")).encode()
        await self._sink.publish(topic, payload)
        self._state.mark(product, record.at_s, record.price, record.row)
        self._state.save()
        self._metrics.published.labels(product).inc()
        newest = self._state.products[product].last_at_s
        self._metrics.newest(product, newest)
