"""The site dashboard against Grafana's own published types (@grafana/schema, generated from
Grafana's CUE kinds and versioned with its releases), typed strictly by the TypeScript compiler
in deploy/grafana/schema-check/check.mjs; and that check catches what it should.

No Grafana server runs here (no registry this project reaches ships one), so this is the
strongest check of issue 8 we can run: see deploy/grafana/README.md for what it does not cover."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.grafana import DASHBOARD, GRAFANA, load

CHECK_DIR = GRAFANA / "schema-check"
TOOLS = "run `make tools` (it runs `npm ci` in deploy/grafana/schema-check)"


def pinned(package: str) -> str:
    lock = json.loads((CHECK_DIR / "package-lock.json").read_text())
    version: str = lock["packages"][f"node_modules/{package}"]["version"]
    return version


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """Run check.mjs on a dashboard file; fail (never skip) when node or the packages are missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed: {TOOLS}; Debian packages nodejs npm", pytrace=False)
    for package in ("@grafana/schema", "typescript"):
        installed = CHECK_DIR / "node_modules" / package / "package.json"
        if not installed.exists():
            pytest.fail(f"{package} is not installed: {TOOLS}", pytrace=False)
        version = json.loads(installed.read_text())["version"]
        if version != pinned(package):
            pytest.fail(f"{package} {version} installed, {pinned(package)} pinned: {TOOLS}")
    return subprocess.run(
        [node, "check.mjs", str(path)], cwd=CHECK_DIR, capture_output=True, text=True, check=False
    )


def test_the_dashboard_conforms_to_grafanas_published_schema() -> None:
    result = check(DASHBOARD)
    assert result.returncode == 0, result.stderr
    schema = pinned("@grafana/schema")
    panels = [p for p in load()["panels"] if p["type"] != "row"]
    assert f"conforms to @grafana/schema {schema} (schemaVersion 42, {len(panels)} panels" in (
        result.stdout
    )


def test_the_check_reports_each_mismatch_and_where(tmp_path: Path) -> None:
    """One file with one mistake of each kind the check exists for, each named with its panel."""
    doc: dict[str, Any] = copy.deepcopy(load())
    by_type = {p["type"]: p for p in reversed(doc["panels"])}  # the first panel of each type
    by_type["stat"]["options"]["colorMode"] = "loud"  # not a value of the enum
    by_type["stat"]["alertThreshold"] = True  # a panel field Grafana does not have (any more)
    by_type["timeseries"]["fieldConfig"]["defaults"]["custom"]["lineWidht"] = 2  # a typo
    by_type["heatmap"]["options"].pop("exemplars")  # required by the heatmap kind
    by_type["row"]["collapsed"] = "no"  # wrong type
    doc["templating"]["list"][0]["allValue"] = None  # what the builder wrote before issue 8
    doc["schemaVersion"] = 39
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(doc))

    result = check(path)

    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stderr
    assert "does not conform to @grafana/schema" in out
    assert "schemaVersion is 39;" in out and "writes 42" in out
    stat, series = by_type["stat"], by_type["timeseries"]
    expected = [
        (f'panel {stat["id"]} "{stat["title"]}" (stat): panel_{stat["id"]}_options', '"loud"'),
        (f'panel {stat["id"]} "{stat["title"]}" (stat): panel_{stat["id"]},', "alertThreshold"),
        (f"panel_{series['id']}_custom", "lineWidht"),
        (f"panel_{by_type['heatmap']['id']}_options", "exemplars"),
        (f"panel_{by_type['row']['id']}_row", "not assignable to type 'boolean'"),
        ("the whole dashboard", "Type 'null' is not assignable"),
    ]
    for where, what in expected:
        reported = [line for line in out.split("\n- ") if where in line]
        assert any(what in line for line in reported), f"{where}: {what} not reported in\n{out}"


def test_a_panel_type_the_check_has_no_types_for_fails(tmp_path: Path) -> None:
    doc = load()
    doc["panels"][1]["type"] = "piechart"
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(doc))
    result = check(path)
    assert result.returncode != 0
    assert "type piechart has no types in check.mjs KINDS" in result.stderr
