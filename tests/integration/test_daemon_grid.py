"""The real daemon under grid instructions: ECRS, GPU tenant growth, frequency trip, escalation."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.site import iso_now, live_site
from tests.support import eventually


async def test_ecrs_deploy_comply_cheap_price_then_recall(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        acks = f"{site.prefix}/dispatch/ack"
        mark = site.probe.mark()
        await site.dispatch({"id": "VDI-7", "type": "ECRS", "mw": 5.0,
                             "notified_at": iso_now(), "deadline_s": 600})  # fmt: skip
        accepted = await site.probe.wait_json(acks, lambda d: d["status"] == "accepted", since=mark)
        assert accepted["id"] == "VDI-7"
        assert accepted["target_kw"] == pytest.approx(6216)  # level at receipt 11216 - 5000
        complied = await site.probe.wait_json(acks, lambda d: d["status"] == "complied", since=mark)
        assert complied["measured_kw"] <= 6216 + 1
        state = await site.probe.wait_json(f"{site.prefix}/dispatch/state",
                                           lambda d: d["obligations"], since=mark)  # fmt: skip
        assert state["obligations"][0]["id"] == "VDI-7"
        assert site.sim.mining_kw() <= 6216 + 1
        # I5: a cheap price does not lift a deployment.
        await site.price(-25.0)
        for _ in range(10):
            await eventually(lambda: True, 0.1)
            assert site.sim.mining_kw() <= 6216 + 1
        mark = site.probe.mark()
        await site.dispatch({"id": "VDI-7-R", "type": "RECALL", "recall_id": "VDI-7",
                             "notified_at": iso_now()})  # fmt: skip
        await site.probe.wait_json(acks, lambda d: d["id"] == "VDI-7-R" and
                                   d["status"] == "accepted", since=mark)  # fmt: skip
        await site.probe.wait_json(f"{site.prefix}/dispatch/state",
                                   lambda d: d["obligations"] == [], since=mark)  # fmt: skip
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        assert site.protected_writes() == 0


async def test_gpu_tenant_growth_keeps_site_under_poi(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        site.sim.gpu_kw["tenant-a"] = 25000.0  # far above its 10 MW firm reservation

        def site_kw() -> float:
            return 25000.0 + site.sim.mining_kw() + 1000.0

        # 30000 POI - 25000 GPU - 1000 aux - 500 margin leaves 3500 kW for mining.
        await eventually(lambda: site.sim.mining_kw() <= 3500 + 1, 5)
        assert site_kw() <= 30000 - 500
        plan = await site.plan(lambda p: p["gpu_reserved_kw"] == pytest.approx(25000))
        assert plan["binding"] == "safety"
        assert site.protected_writes() == 0
        assert all(site.sim.pdus["pdu-gpu"].outlets_on)


async def test_frequency_dip_trips_ufr_pools_at_once(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        site.sim.set_frequency_hz(59.6)
        await eventually(lambda: not any(site.sim.pdus["pdu-a2"].outlets_on), 2)
        await eventually(lambda: site.sim.agents["a2"].power_kw == 0.0, 1)
        assert site.sim.agents["a1"].power_kw == 3000.0  # not under-frequency contracted
        plan = await site.plan(lambda p: p["pools"]["a2"]["state"] == "tripped")
        assert plan["pools"]["a2"]["reason"] == "frequency"
        site.sim.set_frequency_hz(60.0)  # reset after frequency_reset_s = 1 s above 59.9 Hz
        await eventually(lambda: site.sim.agents["a2"].power_kw == 3000.0, 6)
        assert all(site.sim.pdus["pdu-a2"].outlets_on)


async def test_ignoring_agent_is_escalated_to_its_pdu(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path, stuck=frozenset({"a3"})) as site:
        mark = site.probe.mark()
        await site.price(500.0)  # every pool should curtail; a3's agent ignores its command
        await site.plan(lambda p: p["pools"]["a3"]["state"] == "escalated", 6, since=mark)
        await eventually(lambda: not any(site.sim.pdus["pdu-a3"].outlets_on), 3)
        await eventually(lambda: site.sim.agents["a3"].power_kw == 0.0, 1)  # miners off
        escalated = await site.probe.wait_json(  # published right after the plan
            f"{site.prefix}/events", lambda e: e["event"] == "escalated", since=mark
        )
        assert escalated["pool"] == "a3"
        assert site.sim.pdus["pdu-a1"].coil_writes == [0] * 64  # obedient pools: no cut
        assert site.protected_writes() == 0
