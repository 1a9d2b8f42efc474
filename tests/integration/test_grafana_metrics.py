"""Every metric the Grafana dashboard names is in the exposition of the real daemon."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from controller.config import MqttConfig
from tests.grafana import base_name, load, metric_names
from tests.integration.site import live_site


async def test_every_dashboard_metric_is_in_the_daemons_exposition(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    wanted = metric_names(load())
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        # A rejected message: the rejection counter has a series only once something is dropped.
        await site.probe.publish(site.config.feeds.dispatch_topic, b'{"id":"bad"}')
        deadline = time.monotonic() + 10.0
        while True:
            # Series only: a labelled metric with no series yet has HELP and TYPE lines, no data.
            exposed = {base_name(name) for name, _, _ in (await site.metrics()).series}
            missing = wanted - exposed
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert not missing, f"the dashboard names metrics the daemon does not expose: {missing}"
    assert len(wanted) >= 20  # the names were found at all
