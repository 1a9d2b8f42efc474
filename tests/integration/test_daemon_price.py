"""The real daemon against real mosquitto and Modbus servers: price economics and lifecycle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.config import MqttConfig
from tests.integration.site import iso_now, live_site
from tests.support import eventually


async def test_price_merit_order_and_hysteresis(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        mark = site.probe.mark()
        await site.price(75.0)  # above a3 (68.1 + 5) and px; below a1, a2, plc1 breakevens - 5
        plan = await site.plan(lambda p: p["price_usd_per_mwh"] == 75.0 and
                               site.targets(p) == {"a1": 3000, "a2": 3000, "a3": 0,
                                                   "plc1": 2000, "px": 0}, since=mark)  # fmt: skip
        assert plan["binding"] == "price"
        await eventually(lambda: site.sim.agents["a3"].power_kw == 0.0, 5)
        await eventually(lambda: abs(site.sim.plcs["plc1"].measured_kw() - 2000) < 1e-3, 5)
        # Inside the band of a2 (92.8 +/- 5): a running pool keeps running.
        mark = site.probe.mark()
        await site.price(96.0)
        await asyncio.sleep(1.0)
        assert site.sim.agents["a2"].power_kw == 3000.0
        # Above the band: a2 curtails; the PLC pool (81.7) too.
        await site.price(98.5)
        plan = await site.plan(lambda p: site.targets(p)["a2"] == 0, since=mark)
        assert site.targets(plan)["plc1"] == 0
        await eventually(lambda: abs(site.sim.plcs["plc1"].measured_kw()) < 1e-3, 5)
        # Back inside the band from above: a2 stays curtailed; below it, it resumes.
        await site.price(90.0)
        await asyncio.sleep(1.0)
        assert site.sim.agents["a2"].power_kw == 0.0
        mark = site.probe.mark()
        await site.price(20.0)
        plan = await site.plan(lambda p: site.targets(p)["a2"] == 3000 and
                               site.targets(p)["px"] == 240, since=mark)  # fmt: skip
        await eventually(lambda: site.sim.pdus["pdu-px"].outlets_on == [True] * 24, 5)
        assert site.protected_writes() == 0
        assert await site.terminate() == 0


async def test_pdu_pool_is_switched_outlet_by_outlet(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: all(site.sim.pdus["pdu-px"].outlets_on), 5)
        site.sim.pdus["pdu-px"].coil_write_requests.clear()
        await site.dispatch({"id": "C1", "type": "CLR", "mw": 11.0, "notified_at": iso_now()})
        # CLR 11 MW: a1 a2 a3 plc1 (11 MW) fill it, px is the least efficient: all outlets off.
        await eventually(lambda: not any(site.sim.pdus["pdu-px"].outlets_on), 5)
        requests = site.sim.pdus["pdu-px"].coil_write_requests
        assert requests == [(0, [False] * 24)]  # one grouped write for the whole run


async def test_sigterm_with_hold_writes_nothing_more_and_goes_offline(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.agents["a1"].power_kw == 3000.0, 5)
        writes_before = [sum(p.coil_writes) for p in site.sim.pdus.values()]
        plc_writes = site.sim.plcs["plc1"].setpoint_writes
        mark = site.probe.mark()
        assert await site.terminate() == 0
        status = await site.probe.wait_json(
            f"{site.prefix}/status", lambda d: d["state"] == "offline", since=mark
        )
        assert status["version"]
        assert not site.probe.on(f"{site.prefix}/pools/+/cmd", since=mark)
        assert [sum(p.coil_writes) for p in site.sim.pdus.values()] == writes_before
        assert site.sim.plcs["plc1"].setpoint_writes == plc_writes
        assert site.sim.agents["a1"].power_kw == 3000.0  # left as it was


async def test_sigterm_with_curtail_sheds_every_pool(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path, control={"shutdown_action": "curtail"}) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() > 11000, 5)
        assert await site.terminate() == 0
        assert site.sim.agents["a1"].target_kw == 0.0
        assert site.sim.plcs["plc1"].setpoint_kw == 0.0
        assert not any(site.sim.pdus["pdu-px"].outlets_on)
        assert site.protected_writes() == 0
