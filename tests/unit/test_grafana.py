"""deploy/grafana: the site dashboard is what its builder writes, in the JSON model Grafana writes,
every expression is PromQL that promtool accepts, and every metric it names is one curtaild has."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.adapters.metrics import POOL_STATES, Metrics
from tests.grafana import (
    BUILDER,
    DASHBOARD,
    DATASOURCE,
    GRAFANA,
    base_name,
    expressions,
    load,
    metric_names,
    panels,
)

PROMTOOL_MISSING = (
    "promtool is not installed: run `sudo apt-get install prometheus` (Debian package); "
    "the dashboard's PromQL is checked with `promtool check rules`"
)
# Concrete values for Grafana's template variables, so promtool parses what Prometheus will get.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$site": "abilene-1", "$pool": "a1|a2"}


def test_the_committed_json_is_what_the_builder_writes() -> None:
    built = subprocess.run(
        [sys.executable, str(BUILDER), "--stdout"], capture_output=True, text=True, check=True
    ).stdout
    assert built == DASHBOARD.read_text(), (
        f"{DASHBOARD.name} is out of date: run `python {BUILDER.relative_to(GRAFANA.parents[1])}`"
    )


def test_the_dashboard_has_the_structure_grafana_writes() -> None:
    doc = load()
    assert doc["uid"] == "curtaild-site"
    assert doc["title"]
    assert doc["schemaVersion"] >= 39
    assert [v["name"] for v in doc["templating"]["list"]] == ["site", "pool"]
    every = panels(doc)
    for panel in every:
        for key in ("id", "type", "title", "gridPos"):
            assert key in panel, f"panel {panel.get('id')} has no {key}"
        if panel["type"] == "row":  # rows hold no queries: Grafana writes them without one
            assert "targets" not in panel, panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["refId"], panel["title"]
            assert target["expr"], panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"refIds repeat in {panel['title']!r}"
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_panels_fit_24_columns_and_do_not_overlap() -> None:
    boxes = []
    for panel in panels(load()):
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0, panel["title"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']!r} runs past column 24"
        boxes.append((panel["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for a, b in itertools.combinations(boxes, 2):
        overlap = a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
        assert not overlap, f"{a[0]!r} and {b[0]!r} overlap"


def concrete(where: str, expr: str) -> str:
    """The PromQL Prometheus receives: variables substituted, label_values() unwrapped."""
    if where.startswith("variable"):  # label_values(selector, label) is Grafana's, not PromQL
        match = re.fullmatch(r"label_values\((.*), \w+\)", expr)
        assert match is not None, f"{where}: not label_values(selector, label): {expr!r}"
        expr = match[1]
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"{where}: a template variable is left in {expr!r}"
    return expr


def test_every_expression_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": concrete(where, expr), "labels": {"at": where}}
        for i, (where, expr) in enumerate(expressions(load()))
    ]
    path = tmp_path / "dashboard.rules.yml"  # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "curtaild-dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (
        f"promtool rejects the dashboard:\n{result.stdout}{result.stderr}"
    )
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_metric_named_is_one_curtaild_registers() -> None:
    registered = {base_name(m.name) for m in Metrics().registry.collect()}
    assert metric_names(load()) - registered == set()


def test_the_pool_state_timeline_knows_every_plan_state() -> None:
    (timeline,) = [p for p in panels(load()) if p["title"] == "Pool state"]
    assert timeline["type"] == "state-timeline"
    (options,) = [m["options"] for m in timeline["fieldConfig"]["defaults"]["mappings"]]
    shown = {o["text"] for o in options.values()} - {"unknown"}
    assert shown == set(POOL_STATES)
    expr = timeline["targets"][0]["expr"]
    assert set(re.findall(r'state="(\w+)"', expr)) == set(POOL_STATES)


def test_the_provisioning_names_the_datasource_the_dashboard_uses() -> None:
    datasource = (GRAFANA / "provisioning" / "datasources" / "curtaild.yml").read_text()
    assert f"uid: {DATASOURCE['uid']}" in datasource
    assert "url: ${CURTAILD_PROMETHEUS_URL}" in datasource
    default = (GRAFANA / "grafana-server.service.d" / "curtaild.conf").read_text()
    assert "Environment=CURTAILD_PROMETHEUS_URL=http://localhost:9090" in default
    provider = (GRAFANA / "provisioning" / "dashboards" / "curtaild.yml").read_text()
    assert "type: file" in provider


def test_the_pool_state_timeline_shows_each_pools_state(tmp_path: Path) -> None:
    """Its one non-obvious expression, evaluated by promtool: each state as its mapped code."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    (timeline,) = [p for p in panels(load()) if p["title"] == "Pool state"]
    (options,) = [m["options"] for m in timeline["fieldConfig"]["defaults"]["mappings"]]
    code = {o["text"]: int(value) for value, o in options.items()}
    current = {"a1": "running", "a2": "escalated", "a3": "tripped"}
    series = [
        {
            "series": f'curtaild_pool_state{{site="abilene-1",pool="{pool}",state="{state}"}}',
            "values": "1x3" if current[pool] == state else "0x3",
        }
        for pool in current
        for state in POOL_STATES
    ]
    expected = [{"labels": f'{{pool="{p}"}}', "value": code[s]} for p, s in current.items()]
    expr = concrete("Pool state", timeline["targets"][0]["expr"]).replace("a1|a2", ".+")
    test = {"interval": "1m", "input_series": series,
            "promql_expr_test": [{"expr": expr, "eval_time": "2m", "exp_samples": expected}]}  # fmt: skip
    path = tmp_path / "pool_state.test.yml"  # JSON is YAML
    path.write_text(json.dumps({"rule_files": [], "tests": [test]}))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
