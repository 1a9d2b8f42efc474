"""Startup of the real daemon (section 7 "Startup"): pools not heard from yet, devices down at
start, an agent ahead of us in seq, READY, and a deployment before every agent has reported."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller.config import MqttConfig
from controller.sim.site import SimSite
from tests.integration.documents import ecrs, four_cp, override
from tests.integration.faults import expect
from tests.integration.site import FLEET_KW, LiveSite, live_site
from tests.support import eventually


def a3_absent(sim: SimSite) -> None:
    """a3's agent is not running: its miners draw their 3000 kW, nothing reports or listens."""
    sim.agents["a3"].go_silent()


async def first_plan_by(site: LiveSite, deadline: float) -> None:
    """A decision precedes READY: its plan must arrive by `deadline` (it travels through the
    broker, READY does not, hence the slack the caller gives)."""
    topic = f"{site.prefix}/plan"
    await expect(
        site.probe.wait_json(topic, timeout_s=max(0.0, deadline - time.monotonic())),
        "READY=1 but no plan from a first decision",
    )
    assert site.probe.on(topic)[0].at <= deadline


@pytest.mark.parametrize("limit", ["override", "4cp"])
async def test_unreported_pool_is_commanded_and_cut(
    mqtt_cfg: MqttConfig, tmp_path: Path, limit: str
) -> None:
    async with live_site(mqtt_cfg, tmp_path, setup=a3_absent) as site:
        await site.price(20.0)
        await asyncio.sleep(0.5)
        assert site.sim.agents["a3"].power_kw == 3000.0
        mark = site.probe.mark()
        if limit == "override":
            await site.send_override(override("curtail", ttl_s=120))
        else:
            await site.dispatch(four_cp("CP1", end_in_s=120))
        cmd = await expect(
            site.probe.wait_json(
                f"{site.prefix}/pools/a3/cmd", lambda d: d["target_kw"] == 0, since=mark
            ),
            f"a3 (never reported, drawing 3000 kW) not commanded to 0 under a {limit}",
        )
        assert cmd["seq"] >= 1
        # Nobody carries it out: after confirm_timeout_s (1 s) its PDU outlets are cut.
        a3_outlets = site.sim.pdus["pdu-a3"].outlets_on
        await eventually(lambda: not any(a3_outlets), 4)
        await eventually(lambda: site.sim.mining_kw() == 0.0, 3)
        assert site.protected_writes() == 0


async def test_outlet_pool_with_its_pdu_down_at_start_is_left_as_it_is(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    # No price at all: nothing may change px, so any outlet write is a startup write.
    async with live_site(mqtt_cfg, tmp_path, down=frozenset({"pdu-px"})) as site:
        pdu = site.sim.pdus["pdu-px"]
        await site.wait_metric("curtaild_device_up", lambda up: up == 0.0, 5, device="pdu-px")
        await asyncio.sleep(1.0)  # decisions while the PDU cannot be read
        await site.sim.start_device("pdu-px")
        await site.wait_metric("curtaild_device_up", lambda up: up == 1.0, 10, device="pdu-px")
        await asyncio.sleep(2.0)  # several polls and decisions with the PDU readable
        assert pdu.coil_write_requests == [], "outlets switched although no decision changed px"
        assert all(pdu.outlets_on)
        assert site.sim.pool_power_kw()["px"] == pytest.approx(216)


async def test_agent_ahead_in_seq_gets_a_higher_seq(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    def seq_500(sim: SimSite) -> None:
        sim.agents["a1"].applied_seq = 500  # retained state says so before the daemon starts

    async with live_site(mqtt_cfg, tmp_path, setup=seq_500) as site:
        mark = site.probe.mark()
        await site.price(500.0)  # every pool curtails
        cmd = await site.probe.wait_json(
            f"{site.prefix}/pools/a1/cmd", lambda d: d["target_kw"] == 0, since=mark
        )
        assert cmd["seq"] > 500
        agent = site.sim.agents["a1"]
        await eventually(lambda: agent.applied_seq == cmd["seq"], 3)
        await eventually(lambda: agent.power_kw == 0.0, 3)


async def test_ready_waits_for_the_site_meter(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    timeout_s = 5.0
    async with live_site(
        mqtt_cfg, tmp_path, down=frozenset({"poi"}), notify=True, wait_online=False,
        control={"confirm_timeout_s": timeout_s},
    ) as site:  # fmt: skip
        assert site.notify is not None
        # The daemon started after spawn(): 2 s later its confirm_timeout_s cannot be over.
        await asyncio.sleep(max(0.0, site.spawned_at + 2.0 - time.monotonic()))
        assert site.notify.times("READY=1") == [], (
            f"READY=1 before the site meter reported and before confirm_timeout_s ({timeout_s} s)"
        )
        await site.sim.start_device("poi")
        meter_at = time.monotonic()
        ready_at = await site.notify.wait_for("READY=1", 10.0)
        assert ready_at >= meter_at
        await first_plan_by(site, ready_at + 0.5)
        assert site.alive()


async def test_ready_without_site_meter_after_confirm_timeout(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    timeout_s = 3.0
    async with live_site(
        mqtt_cfg, tmp_path, down=frozenset({"poi"}), notify=True, wait_online=False,
        control={"confirm_timeout_s": timeout_s},
    ) as site:  # fmt: skip
        assert site.notify is not None
        ready_at = await site.notify.wait_for("READY=1", 15.0)
        after_s = ready_at - site.spawned_at
        assert after_s >= timeout_s, (
            f"READY=1 {after_s:.2f} s after the start, the site meter never answering: "
            f"it must wait confirm_timeout_s ({timeout_s} s)"
        )
        await first_plan_by(site, ready_at + 0.5)
        assert site.alive()


async def test_ecrs_right_after_start_counts_unreported_pools_at_max(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async def cheap_price_retained(site: LiveSite) -> None:
        await site.price(20.0, retain=True)

    async with live_site(
        mqtt_cfg, tmp_path, setup=a3_absent, before_spawn=cheap_price_retained
    ) as site:
        mark = site.probe.mark()
        await site.dispatch(ecrs("E1", 9.0))
        accepted = await site.ack("E1", "accepted", since=mark)
        # a3 has not reported but draws 3000 kW: the level at notified_at is the whole fleet.
        target_kw = FLEET_KW - 9000
        assert accepted["target_kw"] == pytest.approx(target_kw, abs=1.0), accepted
        await asyncio.sleep(0.3)
        site.sim.agents["a3"].come_back()  # the agent appears and reads its retained cmd
        complied = await site.ack("E1", "complied", timeout_s=6.0, since=mark)
        assert complied["measured_kw"] <= target_kw * 1.02 + 1
        assert [a for a in site.acks("E1", mark) if a["status"] == "shortfall"] == []
        # Not over-curtailed: mining settles at the target, not below it.
        await eventually(lambda: site.sim.mining_kw() >= target_kw * 0.95, 3)
        assert site.sim.mining_kw() <= target_kw * 1.02 + 1
