"""Modbus devices failing under the real daemon: a PDU server stopped and another answering
slower than the daemon's 1 s Modbus timeout during an escalation, and meters going stale."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller.config import MqttConfig
from controller.sim.site import SimSite
from tests.integration.documents import clr, ecrs, recall
from tests.integration.faults import Sampler, at_most
from tests.integration.site import FLEET_KW, live_site
from tests.support import eventually

CONFIRM_TIMEOUT_S = 1.0  # site_data's control.confirm_timeout_s
MODBUS_TIMEOUT_S = 1.0  # the daemon's per-request Modbus timeout: the yardstick of "on time"


async def test_dead_and_slow_pdus_do_not_delay_the_others(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    stuck = frozenset({"a1", "a2", "a3"})  # agents that ignore commands: only PDUs stop them
    async with live_site(mqtt_cfg, tmp_path, stuck=stuck) as site:
        sim = site.sim
        await site.price(20.0)
        await eventually(lambda: sim.mining_kw() == pytest.approx(FLEET_KW), 5)
        await sim.stop_device("pdu-a1")  # a1's hard-cut path is gone
        sim.model("pdu-a2").stall_s = 2.0  # a2's answers come after the daemon gave up
        mark = site.probe.mark()
        sent_at = time.monotonic()
        # ECRS 11 MW: 216 kW may run, so every pool is commanded down at once.
        await site.dispatch(ecrs("E1", 11.0, deadline_s=3))
        target_kw = (await site.ack("E1", "accepted", since=mark))["target_kw"]
        assert target_kw == pytest.approx(FLEET_KW - 11000, abs=1)
        plc, px = sim.plcs["plc1"], sim.pdus["pdu-px"]
        await eventually(lambda: plc.setpoint_kw == 0.0, 3)
        plc_at = time.monotonic() - sent_at
        await eventually(lambda: not any(px.outlets_on), 3)
        px_at = time.monotonic() - sent_at
        await eventually(lambda: not any(sim.pdus["pdu-a3"].outlets_on), 6)
        a3_cut_at = time.monotonic() - sent_at
        timings = f"from the ECRS: plc1 {plc_at:.3f} s, px {px_at:.3f} s, a3 cut {a3_cut_at:.3f} s"
        assert plc_at < MODBUS_TIMEOUT_S, timings
        assert px_at < MODBUS_TIMEOUT_S, timings
        assert a3_cut_at < CONFIRM_TIMEOUT_S + MODBUS_TIMEOUT_S, timings  # not held up
        # The pool behind the dead PDU is reported: plan, device_up, and a shortfall ack.
        plan = await site.plan(lambda p: p["pools"]["a1"]["state"] == "faulted", 6, mark)
        assert plan["pools"]["a1"]["target_kw"] <= target_kw
        await site.wait_metric("curtaild_device_up", lambda up: up == 0.0, 5, device="pdu-a1")
        shortfall = await site.ack("E1", "shortfall", timeout_s=8, since=mark)
        assert shortfall["measured_kw"] > target_kw
        assert sim.agents["a1"].power_kw == 3000.0  # nothing could stop it
        assert site.alive()
        assert site.protected_writes() == 0


async def test_site_meter_stale_raises_nothing_until_it_answers(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path, control={"meter_stale_s": 1.0}) as site:
        status = f"{site.prefix}/status"
        await site.price(20.0)
        await site.dispatch(clr("C1", 7.0))
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(7000, abs=2), 5)
        mark = site.probe.mark()
        await site.sim.stop_device("poi")
        stale = await site.probe.wait_json(
            status, lambda d: "site_meter_stale" in d.get("failsafe", []), 5, mark
        )
        assert stale["state"] == "failsafe"
        metrics = await site.metrics()
        assert metrics.value("curtaild_failsafe_active", reason="site_meter_stale") == 1.0
        async with Sampler(site.sim.mining_kw) as mining:
            mark = site.probe.mark()
            await site.dispatch(recall("C1"))  # room for 4 MW more, but the meter is stale
            await site.probe.wait_json(f"{site.prefix}/dispatch/state",
                                       lambda d: d["obligations"] == [], since=mark)  # fmt: skip
            await asyncio.sleep(1.5)
        assert mining.peak()[1] <= at_most(7000), "a pool was raised with the site meter stale"
        mark = site.probe.mark()
        await site.sim.start_device("poi")
        await site.probe.wait_json(status, lambda d: d["state"] == "online", 5, mark)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(FLEET_KW), 5)


async def test_stale_tenant_meter_keeps_its_last_reading(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    def tenant_above_firm(sim: SimSite) -> None:
        sim.gpu_kw["tenant-a"] = 20000.0  # firm 10000: the reading is what reserves room

    # 30000 POI - 20000 GPU - 1000 aux - 500 margin: 8500 kW for mining.
    cap_kw = 8500.0
    async with live_site(
        mqtt_cfg, tmp_path, setup=tenant_above_firm, control={"meter_stale_s": 1.0}
    ) as site:
        await site.price(20.0)
        await site.plan(lambda p: p["gpu_reserved_kw"] == pytest.approx(20000))
        await eventually(lambda: site.sim.mining_kw() <= at_most(cap_kw), 5)
        mark = site.probe.mark()
        async with Sampler(site.sim.mining_kw) as mining:
            await site.sim.stop_device("gpu-a")
            await asyncio.sleep(1.0 + 2.0)  # well past meter_stale_s
        assert mining.peak()[1] <= at_most(cap_kw)
        metrics = await site.metrics()
        assert metrics.value("curtaild_gpu_reserved_watts") == pytest.approx(20e6)
        plans = [m.json() for m in site.probe.on(f"{site.prefix}/plan", mark)]
        assert all(p["gpu_reserved_kw"] == pytest.approx(20000) for p in plans), [
            p["gpu_reserved_kw"] for p in plans
        ]
        assert site.sim.site_kw() <= 30000.0
