"""The backtest's table and PNG chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from controller.backtest import BacktestResult, Totals
from controller.extras import require

CENTRAL = ZoneInfo("America/Chicago")


def render_table(result: BacktestResult, title: str) -> str:
    c, b = result.controller, result.baseline
    rows: list[tuple[str, str, str, str]] = [
        (
            "mining energy (MWh)",
            f"{c.energy_mwh:,.1f}",
            f"{b.energy_mwh:,.1f}",
            f"{c.energy_mwh - b.energy_mwh:+,.1f}",
        ),
        (
            "energy cost ($)",
            _usd(c.cost_usd),
            _usd(b.cost_usd),
            _usd(c.cost_usd - b.cost_usd, True),
        ),
        (
            "mining revenue earned ($)",
            _usd(c.revenue_usd),
            _usd(b.revenue_usd),
            _usd(c.revenue_usd - b.revenue_usd, True),
        ),
        ("mining revenue forgone ($)", _usd(b.revenue_usd - c.revenue_usd), _usd(0.0), ""),
        (
            "net: revenue - cost ($)",
            _usd(c.net_usd),
            _usd(b.net_usd),
            _usd(c.net_usd - b.net_usd, True),
        ),
        ("avg cost of energy ($/MWh)", _avg(c), _avg(b), ""),
        ("fully curtailed hours", f"{c.curtailed_h:,.2f}", f"{b.curtailed_h:,.2f}", ""),
        ("partly curtailed hours", f"{c.partial_h:,.2f}", f"{b.partial_h:,.2f}", ""),
    ]
    head = ("", "curtaild", "always on", "difference")
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(4)]
    lines = [title, f"{result.hours:,.2f} hours of prices", ""]
    for row in [head, *rows]:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 4)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _usd(value: float, signed: bool = False) -> str:
    return f"{value:+,.0f}" if signed else f"{value:,.0f}"


def _avg(t: Totals) -> str:
    return f"{t.cost_usd / t.energy_mwh:,.2f}" if t.energy_mwh > 0 else "-"


def write_chart(result: BacktestResult, path: Path, title: str) -> None:
    """Price (left axis) against mining load (right axis), one step per price interval."""
    # Imported here: only --plot needs matplotlib (half a second to import), and the Agg
    # backend has to be chosen before pyplot is imported.
    matplotlib = require("matplotlib", "plot", "backtest --plot")
    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    stamps = [datetime.fromtimestamp(t, UTC).astimezone(CENTRAL) for t, _, _ in result.series]
    times = mdates.date2num(stamps)  # type: ignore[no-untyped-call]
    prices = [p for _, p, _ in result.series]
    load_mw = [kw / 1000.0 for _, _, kw in result.series]
    fig, ax_price = plt.subplots(figsize=(12, 5), dpi=100)
    ax_price.step(times, prices, where="post", color="tab:red", linewidth=0.8, label="price")
    ax_price.set_ylabel("price ($/MWh)", color="tab:red")
    ax_price.set_xlabel("Central time")
    ax_load = ax_price.twinx()
    ax_load.fill_between(times, load_mw, step="post", alpha=0.3, color="tab:blue")
    ax_load.set_ylabel("mining load (MW)", color="tab:blue")
    ax_load.set_ylim(bottom=0)
    ax_price.xaxis_date(tz=CENTRAL)
    ax_price.set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
