"""Simulated pool agents and the price replayer over a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from controller.adapters.mqtt import MqttSession
from controller.config import MqttConfig
from controller.feeds.price import parse_price_payload
from controller.sim.pool_agent import SimPoolAgent, SimPoolFleet
from controller.sim.replay import PriceReplayer, price_topic_base, synthetic_storm_day
from tests.support import SHARED_ERCOT, MqttProbe, eventually, running


@contextlib.asynccontextmanager
async def serving(fleet: SimPoolFleet) -> AsyncIterator[SimPoolFleet]:
    task = asyncio.create_task(fleet.run())
    try:
        await fleet.session.wait_connected(5)
        yield fleet
    finally:
        await fleet.close()
        await asyncio.wait_for(task, 5)


def cmd(seq: int, target_kw: float) -> str:
    return json.dumps({"seq": seq, "target_kw": target_kw, "at": "now", "reason": "price"})


def fleet_of(cfg: MqttConfig, *agents: SimPoolAgent) -> SimPoolFleet:
    return SimPoolFleet(cfg, agents, state_interval_s=0.5, tick_s=0.05)


async def test_agent_applies_cmd_and_confirms_with_seq(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    agent = SimPoolAgent(prefix, "c01", 3000.0, response_delay_s=0.2)
    state_topic = f"{prefix}/pools/c01/state"
    async with serving(fleet_of(mqtt_cfg, agent)):
        first = await probe.wait_json(state_topic)
        assert first["seq"] == 0
        assert first["power_kw"] == 3000.0
        assert first["online"] is True
        sent_at = time.monotonic()
        await probe.publish(f"{prefix}/pools/c01/cmd", cmd(7, 1200.0), retain=True)
        state = await probe.wait_json(state_topic, lambda d: d["seq"] == 7)
        assert time.monotonic() - sent_at >= 0.15  # the response delay is modelled
        assert state["power_kw"] <= 1200.0 * 1.02
        assert state["available_kw"] == 3000.0
        assert agent.power_kw == 1200.0
        # An older seq never overrides a newer one; a new higher target is applied.
        await probe.publish(f"{prefix}/pools/c01/cmd", cmd(5, 0.0), retain=True)
        await probe.publish(f"{prefix}/pools/c01/cmd", cmd(8, 5000.0), retain=True)
        state = await probe.wait_json(state_topic, lambda d: d["seq"] == 8)
        assert state["power_kw"] == 3000.0  # capped at what is available
    offline = await probe.wait_json(state_topic, lambda d: d["online"] is False)
    assert offline["seq"] == 8


async def test_retained_cmd_is_applied_at_start_and_bad_cmds_are_ignored(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    await probe.publish(f"{prefix}/pools/c02/cmd", cmd(41, 0.0), retain=True)
    agent = SimPoolAgent(prefix, "c02", 2000.0, response_delay_s=0.05)
    async with serving(fleet_of(mqtt_cfg, agent)):
        await probe.wait_json(f"{prefix}/pools/c02/state", lambda d: d["seq"] == 41)
        assert agent.power_kw == 0.0
        for bad in ('{"seq": true, "target_kw": 5}', '{"seq": 42, "target_kw": -1}', "nope"):
            await probe.publish(f"{prefix}/pools/c02/cmd", bad)
        await eventually(lambda: agent.commands_rejected >= 3)
        assert agent.applied_seq == 41


async def test_stuck_agent_never_applies_until_the_pdu_cuts_it(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    agent = SimPoolAgent(prefix, "c03", 3000.0, response_delay_s=0.05, ignore_commands=True)
    state_topic = f"{prefix}/pools/c03/state"
    async with serving(fleet_of(mqtt_cfg, agent)):
        await probe.publish(f"{prefix}/pools/c03/cmd", cmd(3, 0.0), retain=True)
        mark = probe.mark()
        await asyncio.sleep(0.6)  # past the delay and through a periodic report
        reports = [m.json() for m in probe.on(state_topic, since=mark)]
        assert reports
        assert all(r["seq"] == 0 and r["power_kw"] == 3000.0 for r in reports)
        assert agent.last_command is not None
        assert agent.last_command["seq"] == 3
        agent.force_power_kw(0.0)  # outlets off: power follows, the seq does not
        cut = await probe.wait_json(state_topic, lambda d: d["power_kw"] == 0.0, since=mark)
        assert cut["seq"] == 0


async def test_ramping_agent_moves_at_its_rate(mqtt_cfg: MqttConfig, probe: MqttProbe) -> None:
    prefix = mqtt_cfg.topic_prefix
    agent = SimPoolAgent(prefix, "c04", 1000.0, response_delay_s=0.0, ramp_kw_per_s=2000.0)
    state_topic = f"{prefix}/pools/c04/state"
    async with serving(fleet_of(mqtt_cfg, agent)):
        await probe.publish(f"{prefix}/pools/c04/cmd", cmd(1, 0.0), retain=True)
        applied = await probe.wait_json(state_topic, lambda d: d["seq"] == 1)
        assert applied["power_kw"] > 0.0  # seq reported at once, power still on its way down
        await probe.wait_json(state_topic, lambda d: d["power_kw"] == 0.0, timeout_s=3)
    powers = [m.json()["power_kw"] for m in probe.on(state_topic)]
    assert any(0.0 < p < 1000.0 for p in powers)
    assert powers == sorted(powers, reverse=True)


async def test_two_hundred_pools_share_one_connection(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    agents = [SimPoolAgent(prefix, f"p{i:03d}", 3000.0, response_delay_s=0.05) for i in range(200)]
    fleet = SimPoolFleet(mqtt_cfg, agents, state_interval_s=5.0)
    async with serving(fleet):
        for i in range(200):
            await probe.publish(f"{prefix}/pools/p{i:03d}/cmd", cmd(1, float(i)), retain=True)
        await eventually(lambda: all(a.applied_seq == 1 for a in agents), timeout_s=10)
        await probe.wait_json(f"{prefix}/pools/p199/state", lambda d: d["seq"] == 1)
    assert fleet.session.stats.connects == 1
    assert [a.power_kw for a in agents] == [float(i) for i in range(200)]


def write_905_csv(path: Path) -> None:
    header = (
        "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
        "SettlementPointPrice,DSTFlag"
    )
    rows = [header]
    for day in ("01/15/2024", "01/16/2024", "01/17/2024"):
        for interval in (1, 2, 3):
            for point, price in (("HB_NORTH", 10.0), ("HB_WEST", 20.0 + interval)):
                rows.append(f"{day},19,{interval},{point},HU,{price},N")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


async def test_replay_publishes_parsable_records_in_order(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    csv_path = tmp_path / "np6-905-cd.csv"
    write_905_csv(csv_path)
    topic = price_topic_base(f"{mqtt_cfg.topic_prefix}/prices/#")
    assert topic == f"{mqtt_cfg.topic_prefix}/prices"
    host, port = mqtt_cfg.host, mqtt_cfg.port
    async with (
        MqttProbe(host, port, [f"{mqtt_cfg.topic_prefix}/prices/#"]) as probe,
        running(MqttSession(mqtt_cfg, [], lambda _t, _p, _r: None)) as session,
    ):
        replayer = PriceReplayer.from_csv(
            session,
            topic,
            csv_path,
            ["HB_WEST"],
            start=date(2024, 1, 16),
            end=date(2024, 1, 17),
            seconds_per_interval=0.05,
        )
        started = time.monotonic()
        assert await replayer.run() == 6
        assert time.monotonic() - started >= 0.25  # 6 intervals, the first one at once
        await probe.wait_for(lambda m: len(probe.messages) >= 6)
    docs = [m.json() for m in probe.messages]
    assert [(d["deliveryDate"], d["deliveryInterval"]) for d in docs] == [
        ("2024-01-16", 1), ("2024-01-16", 2), ("2024-01-16", 3),
        ("2024-01-17", 1), ("2024-01-17", 2), ("2024-01-17", 3),
    ]  # fmt: skip
    assert docs[1] == {
        "deliveryDate": "2024-01-16",
        "deliveryHour": 19,
        "deliveryInterval": 2,
        "settlementPoint": "HB_WEST",
        "settlementPointType": "HU",
        "settlementPointPrice": 22.0,
        "DSTFlag": False,
    }
    starts = [parse_price_payload(m.payload, time.time())[0].interval_start for m in probe.messages]
    assert starts == sorted(starts)


async def test_synthetic_storm_day_replays_as_valid_prices(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    topic = f"{mqtt_cfg.topic_prefix}/prices"
    async with running(MqttSession(mqtt_cfg, [], lambda _t, _p, _r: None)) as session:
        replayer = PriceReplayer(session, topic, synthetic_storm_day(), seconds_per_interval=0)
        assert await replayer.run() == 96
        assert await session.flush(5)
    await probe.wait_for(lambda m: len(probe.on(topic)) >= 96)
    docs = [m.json() for m in probe.on(topic)]
    assert all(d["synthetic"] is True for d in docs)
    records = [parse_price_payload(m.payload, time.time())[0] for m in probe.on(topic)]
    prices = [r.price_usd_per_mwh for r in records]
    assert max(prices) > 1000.0
    assert min(prices) > 0.0
    assert [r.interval_start for r in records] == sorted(r.interval_start for r in records)


@pytest.mark.realdata
async def test_replays_the_real_heather_evening(mqtt_cfg: MqttConfig, probe: MqttProbe) -> None:
    topic = f"{mqtt_cfg.topic_prefix}/prices"
    async with running(MqttSession(mqtt_cfg, [], lambda _t, _p, _r: None)) as session:
        replayer = PriceReplayer.from_csv(
            session,
            topic,
            SHARED_ERCOT / "np6-905-cd_rt_spp_hubs_jan2022-2025.csv",
            ["HB_WEST"],
            start=date(2024, 1, 16),
            end=date(2024, 1, 16),
            seconds_per_interval=0,
        )
        assert await replayer.run() == 96
        assert await session.flush(5)
    await probe.wait_for(lambda m: len(probe.on(topic)) >= 96)
    peak = max(probe.on(topic), key=lambda m: m.json()["settlementPointPrice"]).json()
    assert (peak["deliveryHour"], peak["deliveryInterval"]) == (19, 2)
    assert peak["settlementPointPrice"] == 1174.66
