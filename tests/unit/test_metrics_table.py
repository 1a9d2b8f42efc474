"""GaugeTable and the served exposition: the same text prometheus-client would write, rendered
once per change, safe against a writer thread, in both formats a scraper may ask for."""

from __future__ import annotations

import gzip
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from controller.adapters.metrics import Metrics
from controller.adapters.metrics_server import start_server
from controller.adapters.metrics_table import GaugeTable

NAN = float("nan")
VALUES = {
    ("c01", "running"): 1.0,
    ("c01", "ramping"): 0.0,
    ('we"ird\\name\n', "running"): 2_500_000.0,
    ("big", "running"): 1.5e12,
    ("tiny", "running"): 1e-7,
    ("unknown", "running"): NAN,
    ("neg", "running"): -3.25,
    ("inf", "running"): float("inf"),
}


def test_render_is_what_prometheus_client_writes() -> None:
    table = GaugeTable("t_state", "1 for the plan state", ("pool", "state"))
    registry = CollectorRegistry()
    gauge = Gauge("t_state", "1 for the plan state", ("pool", "state"), registry=registry)
    for labels, value in VALUES.items():
        table.set(labels, value)
        gauge.labels(*labels).set(value)
    assert table.render() == generate_latest(registry)


def test_render_is_cached_until_a_value_changes() -> None:
    table = GaugeTable("t_up", "1 reachable", ("device",))
    table.set(("a",), 1.0)
    table.set(("b",), NAN)
    first = table.render()
    table.set(("a",), 1.0)  # same value
    table.set(("b",), NAN)  # NaN kept as NaN is no change either
    assert table.render() is first
    table.set(("a",), 0.0)
    assert b't_up{device="a"} 0.0' in table.render()
    table.remove(("b",))
    assert b'device="b"' not in table.render()
    table.remove(("b",))  # gone already: nothing to do
    assert table.get(("a",)) == 0.0


def test_help_text_that_would_need_escaping_is_refused() -> None:
    with pytest.raises(ValueError, match="help text"):
        GaugeTable("t_bad", 'a "quoted" help', ())


def test_a_render_racing_a_writer_never_sticks_on_stale_text() -> None:
    table = GaugeTable("t_race", "race", ("pool",))
    stop = threading.Event()
    errors: list[RuntimeError] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                table.render()
        except RuntimeError as exc:  # "dictionary changed size during iteration"
            errors.append(exc)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    for i in range(20_000):
        table.set((f"p{i % 500}",), float(i))
        if i % 97 == 0:
            table.remove((f"p{(i * 7) % 500}",))
    stop.set()
    scraper.join()
    assert errors == []
    fresh = GaugeTable("t_race", "race", ("pool",))
    for labels, value in table._values.items():
        fresh.set(labels, value)
    assert table.render() == fresh.render()


def openmetrics_families(text: str) -> list[Metric]:
    """The parser raises on a malformed exposition (e.g. anything after `# EOF`)."""
    return list(parse_openmetrics(text))  # type: ignore[no-untyped-call]


def populated() -> Metrics:
    m = Metrics()
    m.set_pool_plan("c01", 1000.0, "running", None)
    m.set_pool_power_kw("c01", None)
    m.set_device_up("pdu-1", up=True)
    m.observe_event_to_command("dispatch", 0.01)
    return m


def test_both_formats_parse_and_openmetrics_ends_with_eof() -> None:
    m = populated()
    text, content_type = m.render("")
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in parse_text(text.decode())}
    assert families["curtaild_pool_state"].samples[0].labels == {"pool": "c01", "state": "running"}
    om, om_type = m.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text")
    assert om.endswith(b"# EOF\n")
    names = {f.name for f in openmetrics_families(om.decode())}
    assert {"curtaild_pool_state", "curtaild_device_up", "curtaild_commands"} <= names


def test_registry_lists_the_tables_with_their_values() -> None:
    m = populated()
    assert m.registry.get_sample_value("curtaild_pool_target_watts", {"pool": "c01"}) == 1e6
    assert m.registry.get_sample_value("curtaild_device_up", {"device": "pdu-1"}) == 1.0
    assert m.registry.get_sample_value("process_start_time_seconds") is not None


def test_server_negotiates_format_and_gzip_and_refuses_post() -> None:
    m = populated()
    server = m.start_server("127.0.0.1:0")
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        headers = {
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            "Accept-Encoding": "gzip",
        }
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            body = gzip.decompress(response.read()).decode()
        families = {f.name: f for f in openmetrics_families(body)}  # parses: "# EOF" is last
        assert families["curtaild_device_up"].samples[0].value == 1.0
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"))
        assert info.value.code == 405
    finally:
        server.close()


def test_a_plain_registry_is_served_too() -> None:
    registry = CollectorRegistry()
    Gauge("feeder_up", "up", registry=registry).set(1)
    server = start_server("127.0.0.1:0", registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as response:
            assert b"feeder_up 1.0" in response.read()
    finally:
        server.close()
