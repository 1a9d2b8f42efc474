"""Operations surface of the real daemon: metrics on HTTP, SIGHUP reload."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.site import live_site
from tests.support import eventually


def scrape(listen: str) -> str:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
        return str(response.read().decode())


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in the exposition")


async def test_metrics_follow_the_site(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        await site.probe.publish(site.config.feeds.dispatch_topic, b'{"id":"bad"}')
        await asyncio.sleep(0.5)
        text = await asyncio.to_thread(scrape, site.config.metrics.listen)
        assert value(text, "curtaild_mining_cap_watts") == pytest.approx(18.5e6)
        assert value(text, "curtaild_gpu_reserved_watts") == pytest.approx(10e6)
        assert value(text, 'curtaild_price_usd_per_mwh{product="sced_lmp"}') == 20.0
        assert value(text, 'curtaild_pool_target_watts{pool="a1"}') == pytest.approx(3e6)
        assert value(text, 'curtaild_device_up{device="pdu-gpu"}') == 1.0
        assert (
            value(text, 'curtaild_messages_rejected_total{feed="dispatch",reason="missing_field"}')
            == 1.0
        )
        assert value(text, "curtaild_protected_write_refused_total") == 0.0
        assert value(text, 'curtaild_failsafe_active{reason="site_meter_stale"}') == 0.0
        assert value(text, 'curtaild_feed_age_seconds{feed="price"}') < 5.0
        assert value(text, "curtaild_decision_duration_seconds_count") > 0


async def test_sighup_reloads_valid_config_and_keeps_the_old_on_error(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(100.0)  # a1 (120.1) runs; the others are above their bands
        await site.plan(lambda p: site.targets(p) == {"a1": 3000, "a2": 0, "a3": 0,
                                                      "plc1": 0, "px": 0})  # fmt: skip
        original = site.config_path.read_text()
        site.config_path.write_text(original.replace("hashprice_usd_per_ph_day = 50.0",
                                                     "hashprice_usd_per_ph_day = 120.0"))  # fmt: skip
        mark = site.probe.mark()
        site.process.send_signal(signal.SIGHUP)
        await site.probe.wait_json(f"{site.prefix}/events", lambda e: e["event"] == "reloaded",
                                   since=mark)  # fmt: skip
        # At 120 $/PH/day every breakeven is 2.4x higher: all pools beat 100 $/MWh now.
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)

        site.config_path.write_text(original.replace("poi_limit_kw = 30000.0",
                                                     'poi_limit_kw = "lots"'))  # fmt: skip
        mark = site.probe.mark()
        site.process.send_signal(signal.SIGHUP)
        refused = await site.probe.wait_json(
            f"{site.prefix}/events", lambda e: e["event"] == "reload_refused", since=mark
        )
        assert any("site.poi_limit_kw" in p for p in refused["problems"])
        await asyncio.sleep(0.5)
        assert site.process.poll() is None
        assert site.sim.mining_kw() == pytest.approx(11216)  # still on the reloaded config
