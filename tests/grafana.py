"""The committed Grafana dashboard as the tests read it: panels, expressions, metric names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "curtaild-site.json"
BUILDER = GRAFANA / "build_dashboard.py"
DATASOURCE = {"type": "prometheus", "uid": "curtaild-prometheus"}

# What a scrape shows for one metric: counters end in _total, histograms in _bucket/_sum/_count.
_SUFFIX = re.compile(r"_(bucket|sum|count|total|created)$")
_NAME = re.compile(r"\bcurtaild_\w+")


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, and those inside collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in doc["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def expressions(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    out = [
        (f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
        for p in panels(doc)
        for t in p.get("targets", [])
    ]
    out += [
        (f"variable {v['name']!r}", v["query"]["query"])
        for v in doc["templating"]["list"]
        if v["type"] == "query"
    ]
    return out


def base_name(name: str) -> str:
    """The metric a series name belongs to: curtaild_x_total and curtaild_x_bucket -> curtaild_x."""
    return _SUFFIX.sub("", name)


def metric_names(doc: dict[str, Any]) -> set[str]:
    return {base_name(n) for _, expr in expressions(doc) for n in _NAME.findall(expr)}
