"""`curtaild feed-ercot` end to end: the fake ERCOT API -> the real feeder process -> real
mosquitto -> the real daemon acting on the price; kill -9 of the feeder and a restart with
nothing repeated or skipped; the request budget over a whole minute with tokens expiring, a
429 with Retry-After and 500s on the way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from controller.config import MqttConfig
from controller.sim.ercot_api import post_live
from tests.integration.feeder import (
    PASSWORD,
    SUBSCRIPTION_KEY,
    Feeder,
    ercot_section,
    fake_api,
)
from tests.integration.site import live_site
from tests.support import MqttProbe, eventually


async def test_api_prices_reach_the_daemon_and_it_acts(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with fake_api() as fake:
        section = ercot_section(fake, mqtt_cfg.topic_prefix)
        async with live_site(mqtt_cfg, tmp_path, ercot_api=section) as site:
            feeder = Feeder(site.config_path, tmp_path / "feeder.log")
            feeder.start()
            try:
                # A SCED run at $75 (above a3's and px's breakevens + h/2), posted now.
                now = time.time()
                fake.api.store.post("np6-788-cd", "HB_WEST", float(int(now)), now, price=75.0)
                plan = await site.plan(lambda p: p["price_usd_per_mwh"] == 75.0, timeout_s=20)
                assert site.targets(plan) == {"a1": 3000, "a2": 3000, "a3": 0, "plc1": 2000,
                                              "px": 0}  # fmt: skip
                await eventually(lambda: site.sim.agents["a3"].power_kw == 0.0, 10)
                # A cheaper run a second later: a3 mines again.
                fake.api.store.post("np6-788-cd", "HB_WEST", float(int(now)) + 1, time.time(),
                                    price=20.0)  # fmt: skip
                await site.plan(lambda p: p["price_usd_per_mwh"] == 20.0, timeout_s=20)
                await eventually(lambda: site.sim.agents["a3"].power_kw == 3000.0, 10)
                assert feeder.alive()
            finally:
                await feeder.stop()
        assert PASSWORD not in feeder.log() and SUBSCRIPTION_KEY not in feeder.log()


async def test_kill_9_and_restart_neither_repeats_nor_skips(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    prefix = mqtt_cfg.topic_prefix
    topic = f"{prefix}-ercot/prices/np6-788-cd"
    async with fake_api() as fake, MqttProbe(mqtt_cfg.host, mqtt_cfg.port, [topic]) as probe:
        section = ercot_section(fake, prefix, products=["np6-788-cd"])
        config_path = _feeder_config(mqtt_cfg, tmp_path, section)
        feeder = Feeder(config_path, tmp_path / "feeder.log")
        live = asyncio.create_task(post_live(fake.api, every_s=0.4))
        try:
            feeder.start()
            for round_ in range(3):
                await probe.wait_for(lambda m: True, timeout_s=20, since=probe.mark())
                await asyncio.sleep(0.05)  # between a PUBACK and the state save is a 1 ms gap
                feeder.kill9()
                await asyncio.sleep(1.5 + round_)  # SCED runs keep coming while it is down
                feeder.start()
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live
            newest = fake.api.store.latest("np6-788-cd")
            await probe.wait_for(lambda m: json.loads(m.payload)["SCEDTimestamp"]
                                 == _stamp(fake, newest), timeout_s=20)  # fmt: skip
        finally:
            live.cancel()
            await feeder.stop()
    got = [json.loads(m.payload)["SCEDTimestamp"] for m in probe.on(topic)]
    held = [r.row()["SCEDTimestamp"] for r in fake.api.store.visible("np6-788-cd", time.time())
            if r.point == "HB_WEST"]  # fmt: skip
    assert len(got) == len(set(got)), "a record was published twice"
    assert got == held[held.index(got[0]) :], "a record was skipped or out of order"
    assert len(got) > 20


@pytest.mark.timeout(180)
async def test_a_minute_within_the_budget_through_expiring_tokens_429_and_500(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    """poll_s 0.1 would ask 20 times a second; the budget holds it to 12 in any minute, token
    requests and retries included. The first 12 go at once, the rest once the window moves on
    (about 61 s): then the token has expired (8 s tokens: renewed before use, never a 401), a
    429 with Retry-After 5 s pauses everything, and two 500s are retried."""
    limit = 12
    async with fake_api(token_ttl_s=8.0) as fake:
        section = ercot_section(fake, mqtt_cfg.topic_prefix, poll_s=0.1,
                                max_requests_per_min=limit)  # fmt: skip
        config_path = _feeder_config(mqtt_cfg, tmp_path, section)
        feeder = Feeder(config_path, tmp_path / "feeder.log")
        feeder.start()
        try:
            await eventually(lambda: len(fake.api.log) >= limit, 20)
            fake.api.fail_next(429, retry_after_s=5)
            fake.api.fail_next(500, count=2)
            await eventually(lambda: len(fake.api.log) >= 2 * limit, 100, 0.5)
            assert feeder.alive()
            metrics = _scrape(section["metrics_listen"])
        finally:
            await feeder.stop()
    log = fake.api.log
    times = [e.at_s for e in log]
    worst = max(sum(1 for u in times if t - 60.0 < u <= t) for t in times)
    assert worst == limit, f"{worst} requests in 60 s, budget {limit}"  # used, never exceeded
    assert times[limit] - times[0] >= 60.0  # the 13th waited for the window to move on
    assert fake.api.over_limit == 0
    statuses = [e.status for e in log if e.kind == "api"]
    assert statuses.count(429) == 1 and statuses.count(500) == 2 and 401 not in statuses
    after_429 = next(i for i, e in enumerate(log) if e.status == 429)
    assert log[after_429 + 1].at_s - log[after_429].at_s >= 4.9  # Retry-After held it
    tokens = [e for e in log if e.kind == "token"]
    assert len(tokens) >= 2 and all(e.status == 200 for e in tokens)
    assert 'curtaild_feed_requests_total{product="token",status="200"}' in metrics
    assert re.search(
        r'curtaild_feed_requests_total\{product="np6-\d+-cd",status="500"\} 2\.0', metrics
    )


def _stamp(fake: object, at_s: float | None) -> str:
    from controller.sim.ercot_records import FakeRecord  # noqa: PLC0415

    assert at_s is not None
    return str(FakeRecord("np6-788-cd", "HB_WEST", at_s, 0.0, 0.0).row()["SCEDTimestamp"])


def _feeder_config(mqtt: MqttConfig, tmp_path: Path, section: dict[str, object]) -> Path:
    """A feeder-only config: the broker, the state dir, [ercot_api] (and a placeholder pool,
    which the shared config format requires)."""
    from controller.config_render import render_toml  # noqa: PLC0415
    from controller.sim.configs import build_config  # noqa: PLC0415

    data = {"site": {"poi_limit_kw": 1000.0},
            "mqtt": {"host": mqtt.host, "port": mqtt.port, "client_id": mqtt.client_id},
            "control": {"state_dir": str(tmp_path / "state")}, "ercot_api": section,
            "pools": [{"name": "c01", "driver": "mqtt", "max_kw": 100.0,
                       "efficiency_j_per_th": 20.0}]}  # fmt: skip
    dumped = build_config(data).model_dump(mode="python")
    dumped["mqtt"].pop("password")
    path = tmp_path / "feeder.toml"
    path.write_text(render_toml(dumped))
    return path


def _scrape(listen: object) -> str:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as resp:
        return str(resp.read().decode())
