"""The value stack as text tables and as JSON (`curtaild backtest ... [--json]`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.value.hours import Gap
from controller.value.ledger import MonthValue, Strategy
from controller.value.stack import FourCpYear, ValueStack

NOT_MODELLED = (
    (
        "The award process: every offer is awarded in full at the DAM clearing price (a price "
        "taker, offering at $0); offer curves, partial awards and real-time AS are not modelled."
    ),
    (
        "Deployment energy is not modelled: a deployment cuts the awarded load for minutes, a few "
        "times a year, and ERCOT settles that energy in real time; the hour's mean price stands in."
    ),
    (
        "An hour off for 4CP forfeits its reserve award (the capacity payment is charged back); "
        "ERCOT's further non-performance charges are not modelled."
    ),
    (
        "The 4CP charge is on the mining load: GPU tenants and aux pay the same under every "
        "strategy. A year's intervals set the next year's bill; it is shown in their own year."
    ),
    "Hashprice is the config's constant, not the year's history.",
)


@dataclass
class ReportHead:
    """What was valued: the title line and the replay's coverage."""

    title: str
    hours: float
    gaps: list[Gap] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # site, point, market, files, offers


def render_value(head: ReportHead, stack: ValueStack) -> str:
    lines = [head.title, f"{head.hours:,.0f} hours of prices"]
    lines += [f"  not valued: {gap.describe()} (after line {gap.line})" for gap in head.gaps]
    facts = head.facts
    if facts:
        lines.append(f"fleet {facts['fleet_mw']:g} MW under the firm-GPU envelope, hashprice "
                     f"${facts['hashprice_usd_per_ph_day']:g}/PH-day; reserve offers: "
                     f"{facts['offers']}")  # fmt: skip
        lines.append(f"4CP: ${facts['transmission_usd_per_kw_year']:g}/kW-year; causal rule: "
                     f"{facts['fourcp_rule']}")  # fmt: skip
    lines += ["", "By year ($)", *_years_table(stack.strategies)]
    if stack.fourcp:
        lines += ["", "4CP by year", *_fourcp_table(stack.fourcp)]
    for strategy in stack.strategies:
        lines += ["", f"{strategy.name}, by month ($)", *_months_table(strategy)]
    lines += ["", "Not modelled:", *(f"- {text}" for text in NOT_MODELLED)]
    lines += [f"- {note}" for note in stack.notes]
    return "\n".join(lines)


def value_json(head: ReportHead, stack: ValueStack) -> dict[str, Any]:
    return {
        **head.facts,
        "hours": head.hours,
        "gaps": [{"first": g.describe(), "hours": g.hours, "line": g.line} for g in head.gaps],
        **stack.as_dict(),
        "not_modelled": list(NOT_MODELLED),
    }


MONEY = ("energy cost", "mining revenue", "reserve revenue", "4CP charge", "net")


def _money(v: MonthValue) -> list[str]:
    return [
        _usd(v.energy_cost_usd),
        _usd(v.mining_revenue_usd),
        _usd(v.reserve_revenue_usd),
        _usd(v.fourcp_charge_usd),
        _usd(v.net_usd),
    ]


def _years_table(strategies: list[Strategy]) -> list[str]:
    rows: list[list[str]] = [["year", "strategy", *MONEY, "vs always on"]]
    always = strategies[0].years()
    years = sorted({y for s in strategies for y in s.years()})
    for year in years:
        for strategy in strategies:
            value = strategy.years().get(year)
            if value is None:
                continue
            gain = value.net_usd - always[year].net_usd
            rows.append([year, strategy.name, *_money(value), f"{gain:+,.0f}"])
    return _aligned(rows, left=2)


def _months_table(strategy: Strategy) -> list[str]:
    head = ["month", "MWh", *MONEY, "reserve MW-h", "curtailed h", "4CP off h"]
    rows: list[list[str]] = [head]
    rows += [_month_row(key, strategy.months[key]) for key in sorted(strategy.months)]
    rows += [_month_row(year, value) for year, value in strategy.years().items()]
    return _aligned(rows, left=1)


def _month_row(key: str, v: MonthValue) -> list[str]:
    return [
        key,
        f"{v.energy_mwh:,.0f}",
        *_money(v),
        f"{v.reserve_mw_h:,.0f}",
        f"{v.curtailed_h:,.1f}",
        f"{v.fourcp_off_h:,.2f}",
    ]


def _fourcp_table(fourcp: dict[str, dict[int, FourCpYear]]) -> list[str]:
    head = ["year", "strategy", "intervals", "caught", "hours off", "cost of being off",
            "4CP charge", "charge saved", "net gain"]  # fmt: skip
    rows: list[list[str]] = [head]
    years = sorted({y for by_year in fourcp.values() for y in by_year})
    for year in years:
        for name, by_year in fourcp.items():
            v = by_year.get(year)
            if v is None:
                continue
            rows.append([
                str(year), name, str(v.peaks_valued), f"{v.caught}/{v.peaks_valued}",
                f"{v.off_h:,.2f}", _usd(v.cost_usd), _usd(v.charge_usd), _usd(v.saving_usd),
                f"{v.saving_usd - v.cost_usd:+,.0f}",
            ])  # fmt: skip
    return _aligned(rows, left=2)


def _usd(value: float) -> str:
    return f"{value:,.0f}"


def _aligned(rows: list[list[str]], left: int) -> list[str]:
    """Columns padded: the first `left` ones to the left, the figures to the right."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.ljust(widths[k]) if k < left else cell.rjust(widths[k])
            for k, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out
