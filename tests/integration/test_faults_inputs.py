"""Inputs at their edges (section 7 "Dispatch ids", "Stale price", "Faults inside the daemon"):
a reused dispatch id, a price that goes stale or never came, and values no clock can hold."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.documents import clr, ecrs, iso_at, recall
from tests.integration.faults import Sampler, at_most, expect
from tests.integration.site import FLEET_KW, live_site
from tests.support import eventually


async def test_dispatch_id_reused_with_another_type_is_rejected(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.run_every_pool(FLEET_KW)
        mark = site.probe.mark()
        await site.dispatch(ecrs("E1", 5.0))
        cap_kw = (await site.ack("E1", "accepted", since=mark))["target_kw"]
        await site.ack("E1", "complied", since=mark)

        mark = site.probe.mark()
        await site.dispatch(clr("E1", 1.0))  # same id, another type: would cap mining at 1 MW
        rejected = await expect(
            site.ack("E1", "rejected", since=mark),
            "a CLR reusing the active ECRS id E1 was not acked `rejected`",
        )
        assert "id_conflict" in rejected["reason"]
        async with Sampler(site.sim.mining_kw) as mining:
            await asyncio.sleep(1.0)
        assert min(kw for _, kw in mining.samples) >= cap_kw * 0.98  # not cut to the CLR
        assert mining.peak()[1] <= at_most(cap_kw)
        state = site.last(f"{site.prefix}/dispatch/state")
        assert [(o["id"], o["type"]) for o in state["obligations"]] == [("E1", "ECRS")]
        assert state["obligations"][0]["cap_kw"] == pytest.approx(cap_kw)

        # A resend (same id, same type) is acked again; its baseline is the one at receipt,
        # not today's (curtailed) level, which would put the target 5 MW lower still.
        mark = site.probe.mark()
        await site.dispatch(ecrs("E1", 5.0))
        again = await site.probe.wait_json(f"{site.prefix}/dispatch/ack",
                                           lambda d: d["id"] == "E1", since=mark)  # fmt: skip
        assert again["status"] == "complied", again
        assert again["target_kw"] == pytest.approx(cap_kw)
        await asyncio.sleep(0.5)
        assert site.sim.mining_kw() >= cap_kw * 0.98


async def test_no_price_ever_is_a_stale_price(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path, feeds={"price_stale_s": 2.0}) as site:
        status = await expect(
            site.probe.wait_json(
                f"{site.prefix}/status", lambda d: "price_stale" in d.get("failsafe", []), 6.0
            ),
            "no price ever received: status never showed failsafe price_stale",
        )
        assert status["state"] == "failsafe"
        metrics = await site.metrics()
        assert metrics.value("curtaild_failsafe_active", reason="price_stale") == 1.0


async def test_stale_price_with_hold_raises_no_pool(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    stale_s = 2.0
    feeds = {"price_stale_s": stale_s, "on_price_stale": "hold"}
    async with live_site(mqtt_cfg, tmp_path, feeds=feeds) as site:
        plc = site.sim.plcs["plc1"]
        await site.price(20.0)
        priced_at = time.monotonic()
        # CLR 7 MW: a1 3000 + a2 3000 + plc1 at part load 1000; a3 and px off.
        await site.dispatch(clr("C1", 7.0))
        await eventually(lambda: plc.measured_kw() == pytest.approx(1000, abs=1)
                         and site.sim.mining_kw() <= at_most(7000), 5)  # fmt: skip
        await asyncio.sleep(max(0.0, priced_at + stale_s + 0.5 - time.monotonic()))
        mark = site.probe.mark()
        async with Sampler(site.sim.mining_kw) as mining:
            await site.dispatch(recall("C1"))  # room again, but the price is stale: hold
            await site.probe.wait_json(f"{site.prefix}/dispatch/state",
                                       lambda d: d["obligations"] == [], since=mark)  # fmt: skip
            await asyncio.sleep(1.5)
        assert mining.peak()[1] <= at_most(7000), "a pool was raised on a stale price"
        assert plc.setpoint_kw == pytest.approx(1000, abs=1)
        await site.price(20.0)  # fresh again: raised
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(FLEET_KW), 5)


async def test_values_no_clock_can_hold_are_rejected_and_the_daemon_runs_on(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path, notify=True, watchdog_s=1.0) as site:
        assert site.notify is not None
        await site.run_every_pool(FLEET_KW)
        before = await site.metrics()
        mark = site.probe.mark()
        await site.dispatch(ecrs("HUGE", 1.0, deadline_s=1e308))
        far_future = {"deliveryDate": "9999-12-31", "deliveryHour": 24, "deliveryInterval": 4,
                      "settlementPoint": "HB_WEST", "settlementPointType": "HU",
                      "settlementPointPrice": 30.0, "DSTFlag": False}  # fmt: skip
        await site.probe.publish(f"{site.prefix}-ercot/prices/rt", json.dumps(far_future))
        huge_seq = {"seq": 2**70, "power_kw": 3000.0, "available_kw": 3000.0, "online": True,
                    "at": iso_at(time.time())}  # fmt: skip
        await site.probe.publish(f"{site.prefix}/pools/a1/state", json.dumps(huge_seq))
        acked = await site.probe.wait_json(
            f"{site.prefix}/dispatch/ack", lambda d: d["id"] == "HUGE", since=mark
        )
        assert acked["status"] == "rejected", acked
        await asyncio.sleep(1.0)
        assert site.alive(), f"curtaild died:\n{site.log()[-3000:]}"
        after = await site.metrics()
        for feed in ("dispatch", "price", "pool_state"):
            name = "curtaild_messages_rejected_total"
            assert after.get(name, feed=feed) == before.get(name, feed=feed) + 1, feed
        assert site.last(f"{site.prefix}/status")["state"] == "online"
        # The loop goes on: the watchdog keeps coming and a new price still moves the pools.
        watch = site.notify.mark()
        await site.notify.wait_for("WATCHDOG=1", 2.0, since=watch)
        await site.price(500.0)
        await eventually(lambda: site.sim.mining_kw() == 0.0, 5)
