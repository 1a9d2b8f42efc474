"""Inputs: what a reduction is measured from when it arrives before the site has been seen."""

from __future__ import annotations

import json

from controller.clock import FakeClock, iso
from controller.drivers.health import HealthBoard
from controller.drivers.mqtt_pool import MqttPool
from controller.drivers.outlets import OutletGroup
from controller.feeds.common import FeedRejected
from controller.model import PoolTelemetry
from controller.runtime.inputs import Inputs
from tests.unit.harness import make_config


def _inputs(clock: FakeClock) -> Inputs:
    def on_reject(feed: str, verdict: FeedRejected) -> None:
        raise AssertionError(f"{feed} rejected: {verdict}")

    return Inputs(make_config(), clock, on_reject)


def _ecrs(inputs: Inputs, clock: FakeClock) -> None:
    doc = {"id": "E1", "type": "ECRS", "mw": 5.0, "notified_at": iso(clock.now)}
    inputs.on_message(inputs.config.feeds.dispatch_topic, json.dumps(doc).encode(), False)


def _report(inputs: Inputs, clock: FakeClock, kw: float) -> None:
    for pool in ("eff", "mid", "old"):
        inputs.pool_telemetry(pool, PoolTelemetry(kw, 6000.0, True, 0, clock.now))


def test_an_instruction_queued_while_down_is_measured_from_the_site_as_first_seen() -> None:
    clock = FakeClock()
    inputs = _inputs(clock)
    inputs.hold_baselines()
    _ecrs(inputs, clock)  # delivered by the broker before any pool has reported
    assert inputs.dispatch_inbox[0].mining_kw_at_receipt == 18000.0  # each at max_kw
    _report(inputs, clock, 5000.0)
    inputs.release_baselines()
    assert inputs.dispatch_inbox[0].mining_kw_at_receipt == 15000.0
    _ecrs(inputs, clock)  # after the start: measured at receipt, as always
    _report(inputs, clock, 4000.0)
    assert [m.mining_kw_at_receipt for m in inputs.dispatch_inbox] == [15000.0, 15000.0]


def test_after_the_start_a_pool_not_heard_from_counts_at_its_max_kw() -> None:
    clock = FakeClock()
    inputs = _inputs(clock)
    inputs.pool_telemetry("eff", PoolTelemetry(5000.0, 6000.0, True, 0, clock.now))
    _ecrs(inputs, clock)
    assert inputs.dispatch_inbox[0].mining_kw_at_receipt == 17000.0


def test_every_feed_that_delivers_refreshes_its_age() -> None:
    # curtaild_feed_age_seconds{feed} reads these: an override or an agent report is news too.
    clock = FakeClock()
    config = make_config()
    prefix = config.mqtt.topic_prefix
    inputs = _inputs(clock)
    sink_pools = {
        p.name: MqttPool(p, OutletGroup([], HealthBoard(clock)), publish=lambda *_: True,
                         topic_prefix=prefix, sink=inputs)
        for p in config.pools
    }  # fmt: skip
    inputs.attach_pools(sink_pools.values())
    clock.now += 5
    report = {"seq": 0, "power_kw": 100.0, "available_kw": 6000.0}
    inputs.on_message(f"{prefix}/pools/eff/state", json.dumps(report).encode(), False)
    assert inputs.feed_seen_at["pool_state"] == clock.now
    clock.now += 5
    doc = {"mode": "curtail", "ttl_s": 600, "reason": "test", "operator": "op",
           "issued_at": iso(clock.now), "nonce": "n-1"}  # fmt: skip
    inputs.on_message(f"{prefix}/override/set", json.dumps(doc).encode(), False)
    assert inputs.feed_seen_at["override"] == clock.now


def test_a_pool_report_wakes_the_loop_only_when_it_is_news() -> None:
    # Agents repeat their state every few seconds: a repeat must not cost a decision.
    clock = FakeClock()
    inputs = _inputs(clock)
    stale_s = inputs.config.control.pool_stale_s

    def woke(telemetry: PoolTelemetry) -> bool:
        inputs.take_trigger()
        inputs.pool_telemetry("eff", telemetry)
        return inputs.wake.is_set()

    t = clock.now
    assert woke(PoolTelemetry(5000.0, 6000.0, True, 3, t))  # the first report
    assert not woke(PoolTelemetry(5000.0, 6000.0, True, 3, t + 2))  # a repeat
    assert not woke(PoolTelemetry(5040.0, 6000.0, True, 3, t + 4))  # within 1%
    assert inputs.pools["eff"].power_kw == 5040.0  # stored all the same
    assert woke(PoolTelemetry(5040.0, 6000.0, True, 4, t + 6))  # a command applied
    assert woke(PoolTelemetry(2000.0, 6000.0, True, 4, t + 8))  # power moved
    assert woke(PoolTelemetry(2000.0, 3000.0, True, 4, t + 10))  # available moved
    assert woke(PoolTelemetry(2000.0, 3000.0, False, 4, t + 12))  # went offline
    assert woke(PoolTelemetry(2000.0, 3000.0, False, 4, t + 12 + stale_s))  # after a silence
    inputs.take_trigger()
    inputs.pool_telemetry("eff", PoolTelemetry(2000.0, 3000.0, False, 4, t + 99), wake=True)
    assert inputs.wake.is_set()  # a caller may still insist
