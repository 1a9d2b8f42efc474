"""Write deploy/grafana/dashboards/curtaild-site.json, the site dashboard, in Grafana's JSON model.

The JSON is committed; this script is its source, so a change is reviewed as Python rather than
as a 2,000-line diff. tests/unit/test_grafana.py checks that the two agree. Run from anywhere:

    python deploy/grafana/build_dashboard.py           # rewrite the JSON
    python deploy/grafana/build_dashboard.py --stdout  # print it instead

Standard library only: Grafana hosts need not install curtaild to rebuild it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "curtaild-site.json"
DS = {"type": "prometheus", "uid": "curtaild-prometheus"}
S = 'site="$site"'
P = f'{S},pool=~"$pool"'
RI = "$__rate_interval"
# The dashboard JSON model version Grafana 13 writes (@grafana/schema's defaultDashboard;
# deploy/grafana/schema-check checks both). 40-42 changed nothing this dashboard uses:
# refresh is a string, timepicker has no time_options, no override hides a field.
SCHEMA_VERSION = 42
# Plan states (controller/adapters/metrics.py POOL_STATES), coded 1..6 for the state timeline;
# 0 is a pool none of whose state series is 1 (a state this list does not know yet).
POOL_STATES = {
    "running": "green", "curtailed": "blue", "ramping": "yellow",
    "escalated": "orange", "faulted": "red", "tripped": "dark-red",
}  # fmt: skip

Panel = dict[str, Any]


class Layout:
    """Hands out panel ids and places panels left to right, in rows of 24 columns."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.x = self.y = self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self._add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self._newline()

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        self._add({"datasource": DS, **panel}, w, h)

    def _add(self, panel: Panel, w: int, h: int) -> None:
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = self.row_h = 0


def target(expr: str, legend: str = "__auto", ref: str = "A", **extra: Any) -> Panel:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "range": True, "refId": ref,
            **extra}  # fmt: skip


def targets(*pairs: tuple[str, str]) -> list[Panel]:
    return [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(pairs)]


def mapping(values: dict[int, tuple[str, str]]) -> list[Panel]:
    """Value mappings: number -> (text, colour)."""
    options = {str(v): {"text": t, "color": c, "index": i}
               for i, (v, (t, c)) in enumerate(values.items())}  # fmt: skip
    return [{"type": "value", "options": options}]


def thresholds(*steps: tuple[float | None, str]) -> Panel:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def stat(title: str, tgts: list[Panel], desc: str, *, unit: str = "none",
         maps: list[Panel] | None = None, steps: Panel | None = None,
         text_mode: str = "auto") -> Panel:  # fmt: skip
    return {
        "type": "stat", "title": title, "description": desc, "targets": tgts,
        "fieldConfig": {"defaults": {"unit": unit, "mappings": maps or [],
                                     "thresholds": steps or thresholds((None, "green")),
                                     "color": {"mode": "thresholds"}}, "overrides": []},
        "options": {"colorMode": "background", "graphMode": "none", "justifyMode": "auto",
                    "orientation": "auto", "textMode": text_mode, "wideLayout": True,
                    "showPercentChange": False, "percentChangeColorMode": "standard",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }  # fmt: skip


def series(title: str, tgts: list[Panel], desc: str, *, unit: str, bars: bool = False,
           overrides: list[Panel] | None = None) -> Panel:  # fmt: skip
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 10,
              "showPoints": "never", "spanNulls": False, "axisSoftMin": 0}  # fmt: skip
    return {
        "type": "timeseries", "title": title, "description": desc, "targets": tgts,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom,
                                     "color": {"mode": "palette-classic"}},
                        "overrides": overrides or []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True,
                               "calcs": []},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }  # fmt: skip


def timeline(title: str, tgts: list[Panel], desc: str, maps: list[Panel]) -> Panel:
    return {
        "type": "state-timeline", "title": title, "description": desc, "targets": tgts,
        "fieldConfig": {"defaults": {"mappings": maps, "color": {"mode": "fixed"},
                                     "custom": {"fillOpacity": 80, "lineWidth": 0}},
                        "overrides": []},
        "options": {"mergeValues": True, "showValue": "auto", "rowHeight": 0.9,
                    "alignValue": "left", "legend": {"displayMode": "list", "calcs": [],
                                                     "placement": "bottom", "showLegend": False},
                    "tooltip": {"mode": "single", "sort": "none"}},
    }  # fmt: skip


def quantiles(metric: str, by: str, legend: str) -> list[Panel]:
    """p50 and p99 of a histogram per `by` label (empty: over all series)."""
    out = []
    for i, q in enumerate((0.5, 0.99)):
        rate = f"rate({metric}_bucket{{{S}}}[{RI}])"
        expr = f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) ({rate}))"
        out.append(target(expr, f"{legend} p{round(q * 100)}", chr(ord("A") + i)))
    return out


def updown(down: str, up: str) -> list[Panel]:
    return mapping({0: (down, "red"), 1: (up, "green")})


# One call per panel, in screen order: easier to review than the formatter's layout.
# fmt: off
def build() -> Panel:
    lay = Layout()
    lay.row("Status: what holds the site right now")
    lay.add(stat("Override", [target(f"curtaild_override_active{{{S}}}")],
                 "An operator override is in force (it may only lower the cap: "
                 "invariant I4 in docs/protocol.md).",
                 maps=mapping({0: ("none", "green"), 1: ("OVERRIDE ACTIVE", "orange")})), 4, 4)
    lay.add(stat("Fail-safe", [target(f"curtaild_failsafe_active{{{S}}}", "{{reason}}")],
                 "A fail-safe holds (stale price, dispatch or site meter; decision over budget).",
                 maps=mapping({0: ("ok", "green"), 1: ("FAIL-SAFE", "red")}),
                 text_mode="value_and_name"), 6, 4)
    lay.add(stat("Binding limit", [target(f"curtaild_binding{{{S}}} == 1", "{{binding}}")],
                 "The kind of limit that sets the mining cap now.",
                 steps=thresholds((None, "blue")), text_mode="name"), 3, 4)
    lay.add(stat("MQTT", [target(f"curtaild_mqtt_connected{{{S}}}")],
                 "The broker session; every feed and pool agent depends on it.",
                 maps=updown("DISCONNECTED", "connected")), 3, 4)
    lay.add(stat("Scrape", [target(f'up{{job="curtaild",{S}}}')],
                 "Prometheus reaches the daemon; when down, every other panel is stale.",
                 maps=updown("DAEMON DOWN", "up")), 3, 4)
    lay.add(stat("Protected writes refused, 24 h",
                 [target(f"increase(curtaild_protected_write_refused_total{{{S}}}[24h])")],
                 "Writes aimed at a protected PDU and refused (I1): any is a bug to report.",
                 steps=thresholds((None, "green"), (1, "red"))), 5, 4)

    lay.row("Power: price against the mining cap, target and load")
    lay.add(series("Price", [target(f"curtaild_price_usd_per_mwh{{{S}}}", "{{product}}")],
                   "Newest price per product; a gap is no price (unknown, not $0).",
                   unit="suffix: $/MWh"), 12, 9)
    lay.add(series("Mining: cap, target, measured", targets(
        (f"curtaild_mining_cap_watts{{{S}}}", "cap"),
        (f"curtaild_mining_target_watts{{{S}}}", "target"),
        (f"curtaild_mining_power_watts{{{S}}}", "measured"),
        (f"curtaild_safety_envelope_watts{{{S}}}", "safety envelope")),
        "Measured above target means pools still ramping down; target above cap never happens.",
        unit="watt"), 12, 9)

    lay.row("GPU tenants and POI headroom")
    lay.add(series("GPU reservation against tenant load", targets(
        (f"curtaild_gpu_reserved_watts{{{S}}}", "reserved (max of firm and measured)"),
        (f"sum(curtaild_gpu_power_watts{{{S}}})", "tenants, measured"),
        (f"curtaild_gpu_power_watts{{{S}}}", "{{tenant}}")),
        "Reservation is at least the load of every tenant (I3).", unit="watt"), 12, 9)
    poi = f"curtaild_safety_envelope_watts{{{S}}} + curtaild_gpu_reserved_watts{{{S}}}"
    lay.add(series("POI: site power against its limit", targets(
        (f"curtaild_site_power_watts{{{S}}}", "site power (POI meter)"),
        (poi, "limit less aux and margin")),
        "The site meter against the POI (or backup) limit less aux and margin.",
        unit="watt"), 9, 9)
    lay.add(stat("POI headroom", [target(f"{poi} - curtaild_site_power_watts{{{S}}}")],
                 "Limit less aux and margin, minus the site meter; empty while it is stale.",
                 unit="watt", steps=thresholds((None, "red"), (0, "orange"), (500_000, "green"))),
            3, 9)

    lay.row("Pools")
    codes = " or ".join(f'curtaild_pool_state{{{P},state="{s}"}} * {i}'
                        for i, s in enumerate(POOL_STATES, 1))  # fmt: skip
    states = {i: (s, c) for i, (s, c) in enumerate(POOL_STATES.items(), 1)}
    lay.add(timeline("Pool state", [target(f"max by (pool) ({codes})", "{{pool}}")],
                     "Plan state per pool (curtaild_pool_state).",
                     mapping({0: ("unknown", "text"), **states})), 24, 8)
    lay.add(series("Pool target and power", targets(
        (f"curtaild_pool_target_watts{{{P}}}", "{{pool}} target"),
        (f"curtaild_pool_power_watts{{{P}}}", "{{pool}} measured")),
        "Choose pools in the pool variable; the target is what the plan commands.",
        unit="watt"), 24, 9)

    lay.row("Dispatch obligations")
    lay.add(stat("Active obligations", [target(f"curtaild_dispatch_active{{{S}}}", "{{type}}")],
                 "Active dispatch obligations by type.", text_mode="value_and_name",
                 steps=thresholds((None, "green"), (1, "orange"))), 12, 6)
    lay.add(series("Shortfall", [target(f"curtaild_dispatch_shortfall_watts{{{S}}}", "shortfall")],
                   "Reduction an obligation asks for and the site does not deliver yet.",
                   unit="watt"), 12, 6)
    deadline = (f"curtaild_dispatch_deadline_timestamp_seconds{{{S}}} - time()")
    lay.add(stat("Time to the nearest deadline", [target(deadline)],
                 "Seconds until the earliest deadline of a reduction deployment not yet "
                 "complied (negative: late; empty: none pending). Which one: dispatch/state.",
                 unit="s", steps=thresholds((None, "red"), (0, "orange"), (60, "green"))),
            24, 4)

    lay.row("Reaction time")
    lay.add(series("decide() duration",
                   quantiles("curtaild_decision_duration_seconds", "", "decide"),
                   "Wall time of one decision; the budget is 1 s.", unit="s"), 8, 8)
    lay.add(series("Event to command",
                   quantiles("curtaild_event_to_command_seconds", "trigger", "{{trigger}}"),
                   "Message arrival to commands on the wire, per trigger.", unit="s"), 8, 8)
    lay.add(series("Command to confirmation",
                   quantiles("curtaild_command_confirm_seconds", "driver", "{{driver}}"),
                   "Command to the telemetry confirming it, per driver kind.", unit="s"), 8, 8)
    heat = target(f"sum by (le) (increase(curtaild_event_to_command_seconds_bucket{{{S}}}[{RI}]))",
                  "{{le}}", format="heatmap")  # fmt: skip
    lay.add({"type": "heatmap", "title": "Event to command, distribution", "targets": [heat],
             "description": "Every reaction, all triggers: where the mass sits and its tail.",
             "fieldConfig": {"defaults": {}, "overrides": []},
             "options": {"calculate": False, "cellGap": 1, "yAxis": {"unit": "s"},
                         "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential",
                                   "exponent": 0.5, "fill": "dark-orange", "steps": 64,
                                   "reverse": False},
                         "exemplars": {"color": "rgba(255,0,255,0.7)"}, "showValue": "auto",
                         "rowsFrame": {"layout": "auto"}, "legend": {"show": True},
                         "tooltip": {"mode": "single", "yHistogram": False}}}, 24, 8)  # fmt: skip

    lay.row("Health: devices, inputs, errors")
    lay.add(timeline("Devices", [target(f"curtaild_device_up{{{S}}}", "{{device}}")],
                     "Meters, PDUs and pools as the daemon's health checks see them.",
                     updown("down", "up")), 12, 8)
    lay.add(series("Feed age", [target(f"curtaild_feed_age_seconds{{{S}}}", "{{feed}}")],
                   "Seconds since the last valid message per feed (or since start).",
                   unit="s"), 12, 8)
    lay.add(series("Rejected inputs", [target(
        f"sum by (feed, reason) (increase(curtaild_messages_rejected_total{{{S}}}[{RI}]))",
        "{{feed}}: {{reason}}")], "Inbound messages dropped, by feed and reason.",
        unit="short", bars=True), 8, 8)
    lay.add(series("Internal errors", [target(
        f"sum by (where) (increase(curtaild_internal_errors_total{{{S}}}[{RI}]))", "{{where}}")],
        "Exceptions contained in a stage; the daemon went on. Any is worth a look in the log.",
        unit="short", bars=True), 8, 8)
    lay.add(timeline("MQTT connected", [target(f"curtaild_mqtt_connected{{{S}}}", "broker")],
                     "The broker session over time.", updown("disconnected", "connected")), 8, 8)
    return dashboard(lay.panels)
# fmt: on


def variable(name: str, query: str, *, multi: bool) -> Panel:
    """A query variable. No `current` for a single one (Grafana selects the first value); a
    multi one starts on All. Grafana's schema (VariableModel) has no null allValue, so a single
    one has none, and no `definition` (the editor's display copy of the query): not written."""
    var = {
        "name": name, "label": name.capitalize(), "type": "query", "datasource": DS,
        "query": {"qryType": 1, "query": query,
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2, "sort": 1, "regex": "", "hide": 0, "skipUrlSync": False,
        "multi": multi, "includeAll": multi, "options": [],
    }  # fmt: skip
    if multi:
        var |= {"allValue": ".+", "current": {"text": ["All"], "value": ["$__all"]}}
    return var


def dashboard(panels: list[Panel]) -> Panel:
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "curtaild: one site at a glance (deploy/grafana/README.md).",
        "editable": True, "fiscalYearStartMonth": 0, "graphTooltip": 1, "id": None,
        "links": [], "panels": panels, "refresh": "10s", "schemaVersion": SCHEMA_VERSION,
        "tags": ["curtaild", "ercot"],
        "templating": {"list": [
            variable("site", "label_values(curtaild_build_info, site)", multi=False),
            variable("pool", f"label_values(curtaild_pool_target_watts{{{S}}}, pool)",
                     multi=True)]},
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {}, "timezone": "browser",
        "title": "curtaild site", "uid": "curtaild-site", "version": 1, "weekStart": "",
    }  # fmt: skip


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--stdout" in sys.argv[1:]:
        sys.stdout.write(render())
    else:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(render())
