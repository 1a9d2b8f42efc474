"""The value stack's chart: what flexibility adds to always-on each month, stacked by source.

Sources, for the most complete strategy against always on: energy (mining margin gained by
curtailing, less what holding awarded load through spikes cost), reserves (clearing-price
revenue) and 4CP (the charge avoided). Mining margin itself is the same bar under every strategy
and would hide the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controller.extras import require
from controller.value.ledger import Strategy

SOURCES = ("energy", "reserves", "4CP")
COLORS = ("tab:blue", "tab:orange", "tab:green")


@dataclass
class MonthlyStack:
    """Per month: each source's gain over always on ($) and their sum."""

    months: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # source -> $ per month
    gain_usd: list[float] = field(default_factory=list)  # net - always on's net


def monthly_stack(strategy: Strategy, always_on: Strategy) -> MonthlyStack:
    out = MonthlyStack(values={source: [] for source in SOURCES})
    for key in sorted(strategy.months):
        v, base = strategy.months[key], always_on.months[key]
        out.months.append(key)
        margin = v.mining_revenue_usd - v.energy_cost_usd
        out.values["energy"].append(margin - (base.mining_revenue_usd - base.energy_cost_usd))
        out.values["reserves"].append(v.reserve_revenue_usd - base.reserve_revenue_usd)
        out.values["4CP"].append(base.fourcp_charge_usd - v.fourcp_charge_usd)
        out.gain_usd.append(v.net_usd - base.net_usd)
    return out


def write_value_chart(strategy: Strategy, always_on: Strategy, path: Path, title: str) -> None:
    """Stacked bars (gains up, losses down) and the month's total gain as a line."""
    matplotlib = require("matplotlib", "plot", "backtest --plot")
    matplotlib.use("Agg")  # before pyplot: no display
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = monthly_stack(strategy, always_on)
    x = list(range(len(data.months)))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * len(x) + 3), 6), dpi=100)
    up, down = [0.0] * len(x), [0.0] * len(x)
    for source, color in zip(SOURCES, COLORS, strict=True):
        values = [v / 1000.0 for v in data.values[source]]
        bottoms = [up[k] if v >= 0 else down[k] for k, v in enumerate(values)]
        ax.bar(x, values, bottom=bottoms, color=color, label=source, width=0.8)
        for k, v in enumerate(values):
            if v >= 0:
                up[k] += v
            else:
                down[k] += v
    ax.plot(x, [v / 1000.0 for v in data.gain_usd], color="black", marker="o", markersize=3,
            linewidth=1.0, label="total")  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xticks(x, data.months, rotation=90)
    ax.set_ylabel("gain over always on, per month (k$)")
    ax.set_title(f"{title}\n{strategy.name}, against always on", fontsize="medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
