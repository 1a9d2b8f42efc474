"""The shipped alert rules in a real Prometheus (Debian's) scraping the real daemon every second.

The rules are loaded as shipped except that every `for:` is cut to 1 s (prom.rules_with_short_for):
their real durations (30 s to 5 min) are for a site, not a test. Prometheus evaluates every 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from controller.config import MqttConfig
from tests.integration.live import LiveSite
from tests.integration.prom import PrometheusServer, promtool
from tests.integration.site import live_site

PRICE_STALE_S = 2.0


async def wait_alerts(
    prom: PrometheusServer,
    predicate: Callable[[list[dict[str, str]]], bool],
    what: str,
    timeout_s: float = 15.0,
) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        firing = await asyncio.to_thread(prom.alerts)
        if predicate(firing):
            return firing
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s; firing: {firing}\n"
                                 f"{prom.log_text()}")  # fmt: skip
        await asyncio.sleep(0.25)


def named(alert: str, **labels: str) -> Callable[[list[dict[str, str]]], bool]:
    def match(firing: list[dict[str, str]]) -> bool:
        return any(a["alertname"] == alert and labels.items() <= a.items() for a in firing)

    return match


async def wait_scraped(prom: PrometheusServer) -> None:
    def up() -> bool:
        result = prom.api("query?query=up%7Bjob%3D%22curtaild%22%7D")["result"]
        return bool(result) and result[0]["value"][1] == "1"

    deadline = time.monotonic() + 10.0
    while not await asyncio.to_thread(up):
        assert time.monotonic() < deadline, f"never scraped the daemon:\n{prom.log_text()}"
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def keep_pricing(site: LiveSite, every_s: float = 0.5) -> AsyncIterator[None]:
    """A price record every `every_s` while inside: the price feed is fresh."""

    async def feed() -> None:
        while True:
            await site.price(20.0)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(feed())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


PAIR_ONLY = {"curtaild_ha_leader"}


def sample_names(exposition: str) -> set[str]:
    return {re.split(r"[{ ]", line, maxsplit=1)[0]
            for line in exposition.splitlines() if line and not line.startswith("#")}  # fmt: skip


async def test_failsafe_alert_fires_on_a_stale_price_and_resolves(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    feeds = {"on_price_stale": "curtail", "price_stale_s": PRICE_STALE_S}
    async with live_site(mqtt_cfg, tmp_path, feeds=feeds) as site:
        with PrometheusServer(site.config.metrics.listen) as prom:
            async with keep_pricing(site):
                await wait_scraped(prom)
                text = (await site.metrics()).text
                # Every series a rule reads is exposed (under its exposed name: _total, _count).
                used = {n for q in prom.rule_queries() for n in re.findall(r"curtaild_\w+", q)}
                assert len(used) >= 10
                # A pair's series exist only with [ha] (this daemon runs alone): tests/ha/
                # test_pair.py reads them from a node of a pair.
                missing = used - sample_names(text) - PAIR_ONLY
                assert missing == set(), "rules read series the daemon lacks"
                checked = await asyncio.to_thread(promtool, "check", "metrics", stdin=text.encode())
                assert checked.returncode == 0, checked.stdout + checked.stderr
                assert checked.stdout + checked.stderr == "", "promtool check metrics complained"
                await asyncio.sleep(PRICE_STALE_S)  # fresh prices: nothing to alert on
                assert (await asyncio.to_thread(prom.alerts)) == []

            # Prices stop: past price_stale_s the fail-safe curtails, and the alert fires.
            firing = await wait_alerts(
                prom, named("CurtaildFailsafeActive", reason="price_stale"), "no fail-safe alert"
            )
            alert = next(a for a in firing if a["alertname"] == "CurtaildFailsafeActive")
            assert alert["severity"] == "critical"
            assert alert["job"] == "curtaild"

            async with keep_pricing(site):  # prices again: the fail-safe ends, the alert too
                await wait_alerts(
                    prom,
                    lambda f: not named("CurtaildFailsafeActive")(f),
                    "the fail-safe alert did not resolve",
                )


async def test_down_alert_fires_when_the_daemon_dies(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        with PrometheusServer(site.config.metrics.listen) as prom:
            await wait_scraped(prom)
            assert not named("CurtaildDown")(await asyncio.to_thread(prom.alerts))
            await site.kill9()
            firing = await wait_alerts(prom, named("CurtaildDown"), "no down alert")
            down = next(a for a in firing if a["alertname"] == "CurtaildDown")
            assert down["severity"] == "critical"
            assert down["instance"] == site.config.metrics.listen
