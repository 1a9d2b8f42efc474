"""Metrics: the contract's names and labels, watts from kW, identity caching, the HTTP endpoint."""

from __future__ import annotations

import math
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from typing import get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.adapters.metrics import POOL_STATES, Metrics
from controller.adapters.metrics_server import MetricsServerError, parse_listen
from controller.clock import FakeClock
from controller.core.plan import Plan
from controller.core.policies.dispatch import missing_kw
from controller.core.state import ControllerState, Obligation, PoolState, PoolStateName
from controller.runtime.metrics_view import MetricsView
from controller.sim.plant import T0
from tests.unit.factories import dispatch, override, reading, telemetry
from tests.unit.harness import SiteSim, make_config

# CONTRACT section 6: name -> label names, exactly. Counters are exposed with `_total`.
CONTRACT: dict[str, tuple[str, ...]] = {
    "curtaild_price_usd_per_mwh": ("product",),
    "curtaild_site_power_watts": (),
    "curtaild_gpu_power_watts": ("tenant",),
    "curtaild_gpu_reserved_watts": (),
    "curtaild_mining_power_watts": (),
    "curtaild_mining_cap_watts": (),
    "curtaild_mining_target_watts": (),
    "curtaild_pool_target_watts": ("pool",),
    "curtaild_pool_power_watts": ("pool",),
    "curtaild_dispatch_active": ("type",),
    "curtaild_dispatch_shortfall_watts": (),
    "curtaild_award_watts": ("product",),
    "curtaild_override_active": (),
    "curtaild_failsafe_active": ("reason",),
    "curtaild_device_up": ("device",),
    "curtaild_feed_age_seconds": ("feed",),
    "curtaild_messages_rejected_total": ("feed", "reason"),
    "curtaild_protected_write_refused_total": (),
    "curtaild_decision_duration_seconds_bucket": ("le",),
    "curtaild_event_to_command_seconds_bucket": ("trigger", "le"),
    "curtaild_command_confirm_seconds_bucket": ("driver", "le"),
}


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def plan(pools: dict[str, PoolState], **fields: object) -> Plan:
    base = Plan(
        at=T0,
        price_usd_per_mwh=42.0,
        mining_cap_kw=5000.0,
        binding="price",
        gpu_reserved_kw=2000.0,
        envelope_kw=8000.0,
        mining_target_kw=sum(p.target_kw for p in pools.values()),
        mining_measured_kw=1234.5,
        pools=pools,
        failsafe=frozenset(),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_every_contract_metric_is_exposed_with_its_label_names() -> None:
    m = Metrics()
    view = MetricsView(m)
    # Open label sets (tenants, pools, devices, reject reasons) appear with their first value.
    m.set_gpu_power_kw("tenant-a", 1.0)
    m.set_pool_power_kw("c01", 1.0)
    m.set_device_up("poi", up=True)
    m.message_rejected("price", "bad_field")
    view.update_from_plan(plan({"c01": PoolState(target_kw=1.0, state="running")}))

    text = m.exposition().decode()
    seen: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen.setdefault(sample.name, set()).add(frozenset(sample.labels))
    for name, labels in CONTRACT.items():
        assert name in seen, f"{name} missing from the exposition"
        assert seen[name] == {frozenset(labels)}, f"{name}: labels {seen[name]} != {labels}"


def test_closed_label_sets_exist_from_the_start() -> None:
    m = Metrics()
    for reason in ("price_stale", "dispatch_stale", "site_meter_stale", "decision_budget"):
        assert value(m, "curtaild_failsafe_active", reason=reason) == 0.0
    for kind in ("RRS", "ECRS", "NSRS", "ERS10", "ERS30", "CLR", "LIMIT", "EEA", "4CP", "AWARD"):
        assert value(m, "curtaild_dispatch_active", type=kind) == 0.0
    for product in ("RRS", "ECRS", "NSRS"):
        assert value(m, "curtaild_award_watts", product=product) == 0.0
    for driver in ("mqtt", "modbus", "pdu"):
        assert value(m, "curtaild_command_confirm_seconds_count", driver=driver) == 0.0
    # Unknown is not zero: no price and no site reading yet are NaN.
    price = value(m, "curtaild_price_usd_per_mwh", product="rt_spp")
    assert price is not None and math.isnan(price)
    site = value(m, "curtaild_site_power_watts")
    assert site is not None and math.isnan(site)
    assert value(m, "curtaild_build_info", version="0.1.0") == 1.0


def test_no_created_series() -> None:
    m = Metrics()
    m.protected_write_refused()
    assert b"_created" not in m.exposition()


def test_update_from_plan_sets_watts() -> None:
    m = Metrics()
    view = MetricsView(m)
    pools = {
        "c01": PoolState(target_kw=1200.5, state="running"),
        "c02": PoolState(target_kw=0.0, state="curtailed"),
    }
    view.update_from_plan(plan(pools, failsafe=frozenset({"price_stale"})))
    assert value(m, "curtaild_mining_cap_watts") == 5_000_000.0
    assert value(m, "curtaild_mining_target_watts") == 1_200_500.0
    assert value(m, "curtaild_mining_power_watts") == 1_234_500.0
    assert value(m, "curtaild_gpu_reserved_watts") == 2_000_000.0
    assert value(m, "curtaild_safety_envelope_watts") == 8_000_000.0
    assert value(m, "curtaild_pool_target_watts", pool="c01") == 1_200_500.0
    assert value(m, "curtaild_pool_target_watts", pool="c02") == 0.0
    assert value(m, "curtaild_pool_state", pool="c01", state="running") == 1.0
    assert value(m, "curtaild_pool_state", pool="c01", state="curtailed") == 0.0
    assert value(m, "curtaild_pool_state", pool="c02", state="curtailed") == 1.0
    assert value(m, "curtaild_failsafe_active", reason="price_stale") == 1.0
    assert value(m, "curtaild_failsafe_active", reason="dispatch_stale") == 0.0
    assert value(m, "curtaild_binding", binding="price") == 1.0

    view.update_from_plan(plan(pools, failsafe=frozenset()))
    assert value(m, "curtaild_failsafe_active", reason="price_stale") == 0.0


def test_pool_series_are_touched_only_when_the_record_object_changes() -> None:
    m = Metrics()
    view = MetricsView(m)
    record = PoolState(target_kw=1000.0, state="running")
    view.update_from_plan(plan({"c01": record}))
    # Scribble on the series: an update with the same record object must not rewrite it.
    m.pool_target.set(("c01",), -1.0)
    view.update_from_plan(plan({"c01": record}))
    assert value(m, "curtaild_pool_target_watts", pool="c01") == -1.0
    # An equal but new record (what decide() returns when anything changed) is written.
    view.update_from_plan(plan({"c01": replace(record)}))
    assert value(m, "curtaild_pool_target_watts", pool="c01") == 1_000_000.0


def test_pool_state_moves_its_one() -> None:
    m = Metrics()
    view = MetricsView(m)
    view.update_from_plan(plan({"c01": PoolState(target_kw=1000.0, state="running")}))
    view.update_from_plan(plan({"c01": PoolState(target_kw=0.0, state="escalated")}))
    states = {
        s: value(m, "curtaild_pool_state", pool="c01", state=s)
        for s in ("running", "curtailed", "ramping", "escalated", "faulted", "tripped")
    }
    assert states == {s: 1.0 if s == "escalated" else 0.0 for s in states}


def test_binding_label_is_the_kind_not_the_instruction_id() -> None:
    m = Metrics()
    view = MetricsView(m)
    view.update_from_plan(plan({}, binding="dispatch:VDI-20240116-0042"))
    assert value(m, "curtaild_binding", binding="dispatch") == 1.0
    view.update_from_plan(plan({}, binding="dispatch:VDI-20240116-0043"))
    assert value(m, "curtaild_binding", binding="dispatch") == 1.0
    view.update_from_plan(plan({}, binding="safety"))
    assert value(m, "curtaild_binding", binding="dispatch") == 0.0
    assert value(m, "curtaild_binding", binding="safety") == 1.0
    assert b"VDI-" not in m.exposition()


def test_dispatch_shortfall_and_override_from_state() -> None:
    m = Metrics()
    view = MetricsView(m)
    ecrs = dispatch("ECRS", "D1", T0, mw=2.0, mining_kw_at_receipt=5000.0)
    clr = dispatch("CLR", "D2", T0, mw=1.0)
    short = Obligation("D1", ecrs, deadline=T0, status="shortfall", cap_kw=3000.0)
    ok = Obligation("D2", clr, deadline=T0, status="complied", cap_kw=1000.0)
    state = ControllerState(started_at=T0, obligations=(short, ok), override=override("run", T0))
    # The decision computes what a shortfall misses (Decision.shortfall_kw); metrics show it.
    view.update_from_state(state, shortfall_kw=missing_kw(short, 3500.0))
    assert value(m, "curtaild_dispatch_active", type="ECRS") == 1.0
    assert value(m, "curtaild_dispatch_active", type="CLR") == 1.0
    assert value(m, "curtaild_dispatch_active", type="RRS") == 0.0
    assert value(m, "curtaild_dispatch_shortfall_watts") == 500_000.0
    assert value(m, "curtaild_override_active") == 1.0

    view.update_from_state(ControllerState(started_at=T0), shortfall_kw=0.0)
    assert value(m, "curtaild_dispatch_active", type="ECRS") == 0.0
    assert value(m, "curtaild_dispatch_shortfall_watts") == 0.0
    assert value(m, "curtaild_override_active") == 0.0


def test_award_watts_per_product_from_the_active_awards() -> None:
    m = Metrics()
    view = MetricsView(m)
    rrs = dispatch("AWARD", "A1", T0, mw=4.0, start=T0, end=T0 + 3600)
    later = dispatch("AWARD", "A2", T0, mw=2.5, start=T0 + 60, end=T0 + 3600)
    rrs, later = replace(rrs, product="RRS"), replace(later, product="ECRS")
    obs = (
        Obligation("A1", rrs, deadline=T0 + 3600, status="complied", floor_kw=4000.0),
        Obligation("A2", later, deadline=T0 + 3600),
    )
    view.update_from_state(
        ControllerState(started_at=T0, obligations=obs, last_decision_at=T0 + 1), 0.0
    )
    assert value(m, "curtaild_dispatch_active", type="AWARD") == 2.0
    assert value(m, "curtaild_award_watts", product="RRS") == 4_000_000.0
    assert value(m, "curtaild_award_watts", product="ECRS") == 0.0  # not started yet
    assert value(m, "curtaild_award_watts", product="NSRS") == 0.0
    started = (obs[0], replace(obs[1], floor_kw=2500.0))
    view.update_from_state(
        ControllerState(started_at=T0, obligations=started, last_decision_at=T0 + 61), 0.0
    )
    assert value(m, "curtaild_award_watts", product="ECRS") == 2_500_000.0
    view.update_from_state(ControllerState(started_at=T0, last_decision_at=T0 + 62), 0.0)
    assert value(m, "curtaild_award_watts", product="RRS") == 0.0


def test_shortfall_counts_a_reduction_larger_than_what_ran() -> None:
    m = Metrics()
    view = MetricsView(m)
    rrs = dispatch("RRS", "D1", T0, mw=12.5, mining_kw_at_receipt=10000.0)
    short = Obligation("D1", rrs, deadline=T0, status="shortfall", cap_kw=0.0)
    state = ControllerState(started_at=T0, obligations=(short,))
    view.update_from_state(state, shortfall_kw=missing_kw(short, 0.0))
    assert value(m, "curtaild_dispatch_shortfall_watts") == 2_500_000.0


def test_snapshot_meters_tenants_pools_and_acting_price() -> None:
    sim = SiteSim(make_config())
    m = Metrics(sim.config)
    view = MetricsView(m, sim.config)
    sim.run(3)
    view.update_from_snapshot(sim.snapshot())
    assert value(m, "curtaild_gpu_power_watts", tenant="tenant-a") == sim.gpu_kw * 1000
    site_kw = sim.gpu_kw + sim.mining_kw + sim.config.site.aux_kw
    assert value(m, "curtaild_site_power_watts") == pytest.approx(site_kw * 1000)
    for name, kw in sim.power_kw.items():
        assert value(m, "curtaild_pool_power_watts", pool=name) == kw * 1000
    assert value(m, "curtaild_price_usd_per_mwh", product="rt_spp") == 20.0


def test_decisions_from_the_real_core() -> None:
    sim = SiteSim(make_config())
    m = Metrics(sim.config)
    view = MetricsView(m, sim.config)
    for _ in range(3):
        decision = sim.step()
        view.update_from_decision(decision)
        m.observe_decision(25e-6)
    p = decision.plan
    assert value(m, "curtaild_mining_cap_watts") == pytest.approx(p.mining_cap_kw * 1000)
    assert value(m, "curtaild_mining_target_watts") == pytest.approx(p.mining_target_kw * 1000)
    for name, ps in p.pools.items():
        assert value(m, "curtaild_pool_target_watts", pool=name) == ps.target_kw * 1000
        assert value(m, "curtaild_pool_state", pool=name, state=ps.state) == 1.0
    assert value(m, "curtaild_decision_duration_seconds_count") == 3.0
    assert value(m, "curtaild_decision_duration_seconds_bucket", le="2.5e-05") == 3.0
    assert value(m, "curtaild_decision_duration_seconds_bucket", le="1e-05") == 0.0


def test_reload_drops_series_of_removed_pools_and_devices() -> None:
    config = make_config()
    m = Metrics(config)
    view = MetricsView(m, config)
    view.update_from_plan(plan({"old": PoolState(target_kw=5.0)}))
    m.set_pool_power_kw("old", 5.0)
    m.set_device_up("pdu-eff", up=True)
    pools = [p for p in config.pools if p.name != "old"]
    pdus = [p for p in config.pdus if p.name != "pdu-eff"]
    eff = pools[0].model_copy(update={"pdus": []})
    view.configure(config.model_copy(update={"pools": [eff, *pools[1:]], "pdus": pdus}))
    text = m.exposition().decode()
    assert 'pool="old"' not in text
    assert 'device="pdu-eff"' not in text


def test_counters_and_histograms_by_label() -> None:
    m = Metrics()
    m.message_rejected("dispatch", "missing_field")
    m.message_rejected("dispatch", "missing_field")
    m.protected_write_refused()
    m.command_sent("pdu", 3)
    m.observe_event_to_command("dispatch", 0.0004)
    m.observe_command_confirm("mqtt", 1.7)
    m.set_mqtt_connected(connected=True)
    labels = {"feed": "dispatch", "reason": "missing_field"}
    assert value(m, "curtaild_messages_rejected_total", **labels) == 2.0
    assert value(m, "curtaild_protected_write_refused_total") == 1.0
    assert value(m, "curtaild_commands_total", driver="pdu") == 3.0
    assert (
        value(m, "curtaild_event_to_command_seconds_bucket", trigger="dispatch", le="0.0005") == 1
    )
    assert value(m, "curtaild_command_confirm_seconds_bucket", driver="mqtt", le="1.0") == 0.0
    assert value(m, "curtaild_command_confirm_seconds_bucket", driver="mqtt", le="2.5") == 1.0
    assert value(m, "curtaild_mqtt_connected") == 1.0


def test_feed_age_is_computed_at_scrape_time() -> None:
    clock = FakeClock(T0)
    m = Metrics(clock=clock)
    clock.now += 30.0
    assert value(m, "curtaild_feed_age_seconds", feed="price") == 30.0  # since start
    m.feed_seen("price")
    clock.now += 4.5
    assert value(m, "curtaild_feed_age_seconds", feed="price") == 4.5
    m.feed_seen("weather", at=clock.now - 2.0)  # a feed not known up front
    assert value(m, "curtaild_feed_age_seconds", feed="weather") == 2.0


def test_server_on_port_zero_serves_metrics_and_closes() -> None:
    m = Metrics()
    view = MetricsView(m)
    view.update_from_plan(plan({}))
    server = m.start_server("127.0.0.1:0")
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            body = response.read().decode()
        assert "curtaild_mining_cap_watts 5e+06" in body
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsServerError) as info:
            Metrics().start_server(f"127.0.0.1:{port}")
    assert str(info.value) == (
        f"metrics listen 127.0.0.1:{port}: address in use; set [metrics] listen to a free port"
    )


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        (":9108", ("0.0.0.0", 9108)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:", "host:port", "h:65536", ""])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(MetricsServerError, match=r"set \[metrics\] listen"):
        parse_listen(listen)


def test_snapshot_readings_unknown_until_every_tenant_meter_reports() -> None:
    sim = SiteSim(make_config())
    m = Metrics(sim.config)
    view = MetricsView(m, sim.config)
    snap = replace(sim.snapshot(), meters_kw={"poi": reading(100.0, T0)})
    view.update_from_snapshot(snap)
    gpu = value(m, "curtaild_gpu_power_watts", tenant="tenant-a")
    assert gpu is not None and math.isnan(gpu)
    assert value(m, "curtaild_site_power_watts") == 100_000.0
    snap = replace(snap, pools={"eff": telemetry(12.0, T0)})
    view.update_from_snapshot(snap)
    assert value(m, "curtaild_pool_power_watts", pool="eff") == 12_000.0


def test_pool_state_labels_are_the_cores_plan_states() -> None:
    # The adapter keeps the label set as data (it never imports core): the two must agree.
    assert set(POOL_STATES) == set(get_args(PoolStateName))
