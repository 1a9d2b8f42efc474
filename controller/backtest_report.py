"""The backtest's table and PNG chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from controller.backtest import BacktestResult, Totals
from controller.extras import require

CENTRAL = ZoneInfo("America/Chicago")
# Consecutive intervals further apart than this are drawn as a break in every line (a file of
# four Januaries would otherwise be drawn as flat lines across each eleven-month gap).
GAP_S = 2 * 3600.0
NAN = float("nan")


def render_table(result: BacktestResult, title: str) -> str:
    c, b, i = result.controller, result.baseline, result.ideal
    rows: list[tuple[str, str, str, str, str]] = [
        (
            "mining energy (MWh)",
            f"{c.energy_mwh:,.1f}",
            f"{b.energy_mwh:,.1f}",
            f"{i.energy_mwh:,.1f}",
            f"{c.energy_mwh - b.energy_mwh:+,.1f}",
        ),
        (
            "energy cost ($)",
            _usd(c.cost_usd),
            _usd(b.cost_usd),
            _usd(i.cost_usd),
            _usd(c.cost_usd - b.cost_usd, True),
        ),
        (
            "mining revenue earned ($)",
            _usd(c.revenue_usd),
            _usd(b.revenue_usd),
            _usd(i.revenue_usd),
            _usd(c.revenue_usd - b.revenue_usd, True),
        ),
        (
            "mining revenue forgone ($)",
            _usd(b.revenue_usd - c.revenue_usd),
            _usd(0.0),
            _usd(b.revenue_usd - i.revenue_usd),
            "",
        ),
        (
            "net: revenue - cost ($)",
            _usd(c.net_usd),
            _usd(b.net_usd),
            _usd(i.net_usd),
            _usd(c.net_usd - b.net_usd, True),
        ),
        ("avg cost of energy ($/MWh)", _avg(c), _avg(b), _avg(i), ""),
        ("fully curtailed hours", _h(c.curtailed_h), _h(b.curtailed_h), _h(i.curtailed_h), ""),
        ("partly curtailed hours", _h(c.partial_h), _h(b.partial_h), _h(i.partial_h), ""),
    ]
    head = ("", "curtaild", "always on", "ideal", "difference")
    widths = [max(len(r[k]) for r in [*rows, head]) for k in range(len(head))]
    lines = [title, f"{result.hours:,.2f} hours of prices", ""]
    for row in [head, *rows]:
        cells = [row[0].ljust(widths[0])] + [row[k].rjust(widths[k]) for k in range(1, len(head))]
        lines.append("  ".join(cells).rstrip())
    lines += [
        "",
        "difference: curtaild - always on. ideal: each pool on exactly while the price is",
        "under its breakeven, no dwell, hysteresis or ramp.",
    ]
    return "\n".join(lines)


def _usd(value: float, signed: bool = False) -> str:
    return f"{value:+,.0f}" if signed else f"{value:,.0f}"


def _h(hours: float) -> str:
    return f"{hours:,.2f}"


def _avg(t: Totals) -> str:
    return f"{t.cost_usd / t.energy_mwh:,.2f}" if t.energy_mwh > 0 else "-"


@dataclass
class ChartData:
    """The chart's points, one per interval start, with a NaN point closing each gap.

    Steps are drawn `where="post"`: a break point sits at the end of the interval before a gap,
    so that interval keeps its full width and no line is drawn across the gap. The cumulative
    nets (through each interval, at its start) carry their value over a gap (nothing was
    earned in it); only their line breaks.
    """

    times: list[float] = field(default_factory=list)  # epoch s
    prices: list[float] = field(default_factory=list)  # $/MWh
    load_mw: list[float] = field(default_factory=list)
    net_usd: list[float] = field(default_factory=list)  # cumulative: curtaild
    baseline_net_usd: list[float] = field(default_factory=list)  # cumulative: always on
    ideal_net_usd: list[float] = field(default_factory=list)  # cumulative: the ideal

    def add(self, t: float, price: float, mw: float, nets: tuple[float, float, float]) -> None:
        self.times.append(t)
        self.prices.append(price)
        self.load_mw.append(mw)
        self.net_usd.append(nets[0])
        self.baseline_net_usd.append(nets[1])
        self.ideal_net_usd.append(nets[2])


def chart_data(result: BacktestResult, gap_s: float = GAP_S) -> ChartData:
    """The chart's series, broken with NaN where consecutive intervals are over `gap_s` apart."""
    data = ChartData()
    cum = (0.0, 0.0, 0.0)
    previous = None
    for row in result.series:
        if previous is not None and row.start - previous.start > gap_s:
            data.add(previous.start + previous.length_s, NAN, NAN, (NAN, NAN, NAN))
        cum = (cum[0] + row.net_usd, cum[1] + row.baseline_net_usd, cum[2] + row.ideal_net_usd)
        data.add(row.start, row.price_usd_per_mwh, row.mining_kw / 1000.0, cum)
        previous = row
    if previous is not None:  # the last interval's step, drawn to its end
        data.add(previous.start + previous.length_s, NAN, NAN, (NAN, NAN, NAN))
    return data


def write_chart(result: BacktestResult, path: Path, title: str) -> None:
    """Price against mining load (top), cumulative net of the three ways to run (bottom)."""
    # Imported here: only --plot needs matplotlib (half a second to import), and the Agg
    # backend has to be chosen before pyplot is imported.
    matplotlib = require("matplotlib", "plot", "backtest --plot")
    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = chart_data(result)
    stamps = [datetime.fromtimestamp(t, UTC).astimezone(CENTRAL) for t in data.times]
    times = mdates.date2num(stamps)  # type: ignore[no-untyped-call]
    fig, (ax_price, ax_net) = plt.subplots(
        2, 1, figsize=(12, 8), dpi=100, sharex=True, height_ratios=(3, 2)
    )
    ax_price.step(times, data.prices, where="post", color="tab:red", linewidth=0.8)
    ax_price.set_ylabel("price ($/MWh)", color="tab:red")
    ax_load = ax_price.twinx()
    ax_load.fill_between(times, data.load_mw, step="post", alpha=0.3, color="tab:blue")
    ax_load.set_ylabel("mining load (MW)", color="tab:blue")
    ax_load.set_ylim(bottom=0)
    ax_price.set_title(title)
    for values, label, color, style in (
        (data.ideal_net_usd, "ideal", "tab:green", "--"),
        (data.baseline_net_usd, "always on", "tab:gray", "-"),
        (data.net_usd, "curtaild", "tab:blue", "-"),  # last: on top of the ideal it follows
    ):
        kusd = [v / 1000.0 for v in values]
        ax_net.plot(times, kusd, label=label, color=color, linestyle=style, linewidth=1.0)
    ax_net.set_ylabel("cumulative net (k$)")
    ax_net.set_xlabel("Central time")
    ax_net.axhline(0.0, color="black", linewidth=0.5)
    ax_net.legend(loc="upper left")
    ax_net.xaxis_date(tz=CENTRAL)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
