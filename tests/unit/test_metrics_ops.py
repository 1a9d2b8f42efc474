"""Metrics beyond CONTRACT section 6 that the alert rules use (deploy/prometheus/curtaild.rules.yml):
command failures by driver, MQTT reconnects, the deployment deadline, the POI limit."""

from __future__ import annotations

import math

from controller.adapters.metrics import DRIVERS, Metrics
from controller.core.state import ControllerState, Obligation
from controller.runtime.apply import ApplyReport
from controller.runtime.metrics_view import MetricsView
from controller.sim.plant import T0
from tests.unit.factories import dispatch
from tests.unit.harness import make_config


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_command_failures_by_driver_from_the_apply_report() -> None:
    m = Metrics()
    for driver in DRIVERS:  # a closed label set: every series exists at 0 from the start
        assert value(m, "curtaild_command_failures_total", driver=driver) == 0.0
    report = ApplyReport()
    report.failed("modbus")
    report.failed("modbus")
    report.failed("pdu")
    assert report.failures == 3
    for driver, n in report.failures_by_driver.items():
        m.command_failed(driver, n)
    assert value(m, "curtaild_command_failures_total", driver="modbus") == 2.0
    assert value(m, "curtaild_command_failures_total", driver="pdu") == 1.0
    assert value(m, "curtaild_command_failures_total", driver="mqtt") == 0.0


def test_mqtt_reconnects_and_connection_state() -> None:
    m = Metrics()
    assert value(m, "curtaild_mqtt_reconnects_total") == 0.0
    m.set_mqtt_connected(connected=True)
    m.set_mqtt_connected(connected=False)
    m.mqtt_reconnected()
    m.set_mqtt_connected(connected=True)
    assert value(m, "curtaild_mqtt_reconnects_total") == 1.0
    assert value(m, "curtaild_mqtt_connected") == 1.0


def test_poi_limit_from_the_config_in_watts() -> None:
    config = make_config()
    assert math.isnan(value(Metrics(), "curtaild_poi_limit_watts") or 0.0)  # unknown, not 0
    m = Metrics(config)
    assert value(m, "curtaild_poi_limit_watts") == config.site.poi_limit_kw * 1000.0


def test_deadline_is_the_earliest_deployment_not_complied() -> None:
    m = Metrics()
    view = MetricsView(m)

    def deadline() -> float:
        got = value(m, "curtaild_dispatch_deadline_timestamp_seconds")
        assert got is not None
        return got

    assert math.isnan(deadline())  # no deployment: NaN, so `time() > ...` is never true
    ecrs = dispatch("ECRS", "D1", T0, mw=1.0, mining_kw_at_receipt=5000.0)
    rrs = dispatch("RRS", "D2", T0, mw=1.0, mining_kw_at_receipt=5000.0)
    clr = dispatch("CLR", "D3", T0, mw=1.0)
    late = Obligation("D1", ecrs, deadline=T0 + 600, status="shortfall")
    soon = Obligation("D2", rrs, deadline=T0 + 900)
    limit = Obligation("D3", clr, deadline=T0 + 10)  # not a deployment: no deadline shown
    view.update_from_state(ControllerState(T0, obligations=(late, soon, limit)), 0.0)
    assert deadline() == T0 + 600
    done = Obligation("D1", ecrs, deadline=T0 + 600, status="complied")
    view.update_from_state(ControllerState(T0, obligations=(done, soon, limit)), 0.0)
    assert deadline() == T0 + 900
    view.update_from_state(ControllerState(T0, obligations=(limit,)), 0.0)
    assert math.isnan(deadline())
