"""The feeder's metrics (CONTRACT 2.6), on `[ercot_api] metrics_listen`, from its own registry."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class FeedMetrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self.requests = Counter(
            "curtaild_feed_requests", "HTTP requests to ERCOT's API (product 'token': the token "
            "endpoint); status is the HTTP code or 'network'", ["product", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.record_age = Gauge(
            "curtaild_feed_record_age_seconds",
            "Now minus the time of the newest record published", ["product"],
            registry=self.registry,
        )  # fmt: skip
        self.up = Gauge(
            "curtaild_feed_up", "1 when the last poll of every product succeeded",
            registry=self.registry,
        )  # fmt: skip
        self.published = Counter(
            "curtaild_feed_published", "Records published (corrections included)",
            ["product"], registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "curtaild_feed_rows_rejected", "API rows the daemon would reject, not published",
            ["product"], registry=self.registry,
        )  # fmt: skip
        self.budget_used = Gauge(
            "curtaild_feed_requests_last_minute", "Requests sent in the budget's window",
            registry=self.registry,
        )  # fmt: skip

    def request(self, product: str, status: str) -> None:
        self.requests.labels(product, status).inc()

    def newest(self, product: str, at_s: float) -> None:
        """Age is computed at scrape time: it grows while nothing new arrives."""
        self.record_age.labels(product).set_function(lambda: self._clock() - at_s)
