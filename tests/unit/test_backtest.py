"""Backtest figures against hand-computed expectations, and on the real January 2024 prices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from controller.backtest import run_backtest
from controller.backtest_report import chart_data, render_table
from controller.cli import main
from controller.config import Config, load_config
from controller.feeds.ercot import read_price_csv
from controller.model import PriceRecord

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ercot"
RT_FILE = SHARED / "np6-905-cd_rt_spp_hubs_jan2022-2025.csv"
needs_real_data = pytest.mark.skipif(
    not RT_FILE.exists(), reason="../shared/data/ercot not present (real ERCOT data lives outside)"
)
ROOT = Path(__file__).resolve().parents[2]

ONE_POOL = {
    "site": {"poi_limit_kw": 5000, "settlement_point": "HB_WEST"},
    # breakeven = 48 x (1 - 0) x 1000 / (24 x 20) = 100 $/MWh
    "economics": {"hashprice_usd_per_ph_day": 48.0, "pool_fee": 0.0,
                  "hysteresis_usd_per_mwh": 0.0, "min_run_s": 0, "min_curtail_s": 0},
    "control": {"tick_s": 1.0, "ramp_up_kw_per_s": 1_000_000},
    "pools": [{"name": "p", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 20.0}],
}  # fmt: skip


def series(prices: Sequence[float], start: float = 1_700_000_000.0) -> list[PriceRecord]:
    return [PriceRecord("rt_spp", "HB_WEST", start + 900 * i, p) for i, p in enumerate(prices)]


def test_figures_match_a_hand_computation() -> None:
    result = run_backtest(Config.model_validate(ONE_POOL), series([50, 150, 50, 150]))
    # Interval 1: the first decision never raises, so 1 s at 0 kW then 899 s at 1000 kW.
    # Interval 2: curtailed at once. Interval 3: 900 s at 1000 kW. Interval 4: curtailed.
    run_h = (899 + 900) / 3600
    c, b = result.controller, result.baseline
    assert result.hours == pytest.approx(1.0)
    assert c.energy_mwh == pytest.approx(run_h)
    assert c.cost_usd == pytest.approx(899 / 3600 * 50 + 900 / 3600 * 50)
    assert c.revenue_usd == pytest.approx(100.0 * run_h)  # 1 MW x 100 $/MWh breakeven
    assert c.curtailed_h == pytest.approx((1 + 900 + 900) / 3600)
    assert b.energy_mwh == pytest.approx(1.0)
    assert b.cost_usd == pytest.approx(0.25 * (50 + 150 + 50 + 150))
    assert b.revenue_usd == pytest.approx(100.0)
    assert b.net_usd == pytest.approx(0.0)
    assert c.net_usd == pytest.approx(c.revenue_usd - c.cost_usd)
    assert [round(row.mining_kw) for row in result.series] == [round(1000 * 899 / 900), 0, 1000, 0]


def test_dwell_delays_a_switch_inside_an_interval() -> None:
    data = {**ONE_POOL, "economics": {**ONE_POOL["economics"], "min_run_s": 1200}}  # type: ignore[dict-item]
    result = run_backtest(Config.model_validate(data), series([50, 150, 150]))
    # Started at t0+1 s; may stop only at t0+1201 s: 1200 s at 1000 kW in all.
    assert result.controller.energy_mwh == pytest.approx(1200 / 3600)


def test_ramp_is_integrated_second_by_second() -> None:
    data = {**ONE_POOL, "control": {"tick_s": 1.0, "ramp_up_kw_per_s": 100}}
    result = run_backtest(Config.model_validate(data), series([50]))
    # 0 kW for the first second, then +100 kW per second to 1000 kW at t0+11 s.
    ramp_kwh = sum(100 * k for k in range(1, 10)) / 3600
    full_kwh = 1000 * (900 - 10) / 3600
    assert result.controller.energy_mwh == pytest.approx((ramp_kwh + full_kwh) / 1000)


@needs_real_data
def test_winter_storm_heather_slice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chart = tmp_path / "heather.png"
    args = ["backtest", "--config", str(ROOT / "config.example.toml"), "--prices", str(RT_FILE),
            "--from", "2024-01-13", "--to", "2024-01-17", "--plot", str(chart)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "120.00 hours of prices" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = load_config(ROOT / "config.example.toml", environ={})
    records = read_price_csv(RT_FILE, "HB_WEST", *_dates("2024-01-13", "2024-01-17"))
    result = run_backtest(config, records)
    c, b = result.controller, result.baseline
    assert c.net_usd > b.net_usd  # curtailing through the storm pays
    assert c.energy_mwh < b.energy_mwh
    assert c.curtailed_h > 10
    peak = max(result.series, key=lambda row: row.price_usd_per_mwh)
    assert peak.price_usd_per_mwh == pytest.approx(1174.66)  # the 2024-01-16 18:15 interval
    assert peak.mining_kw == 0.0  # nothing mined at the peak
    assert result.ideal.net_usd >= c.net_usd  # dwell, hysteresis and ramp cost something
    assert "ideal" in out.splitlines()[3]


def _dates(a: str, b: str) -> tuple[date, date]:
    return date.fromisoformat(a), date.fromisoformat(b)


def test_bad_price_file_is_rejected_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
        "SettlementPointPrice,DSTFlag\n"
        "01/16/2024,19,2,HB_WEST,HU,1174.66,N\n"
        "01/16/2024,19,3,HB_WEST,HU,abc,N\n"
    )
    args = ["backtest", "--config", str(ROOT / "config.example.toml"), "--prices", str(csv)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3: SettlementPointPrice" in err


def test_unknown_layout_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("when,price\n2024-01-01,3\n")
    args = ["backtest", "--config", str(ROOT / "config.example.toml"), "--prices", str(csv)]
    assert main(args) == 2
    assert "layout" in capsys.readouterr().err.lower()


# -- the per-interval ideal ------------------------------------------------------------------


def test_ideal_equals_the_controller_without_dwell_hysteresis_or_ramp() -> None:
    # Starts above breakeven (0 kW either way: the first decision never raises), then every
    # switch happens in the first decision of its interval, as the ideal assumes.
    result = run_backtest(Config.model_validate(ONE_POOL), series([150, 50, 150, 50, 99, 101]))
    c, i = result.controller, result.ideal
    assert i.energy_mwh == pytest.approx(0.75)  # 50, 50, 99: under the 100 $/MWh breakeven
    assert c.energy_mwh == pytest.approx(i.energy_mwh)
    assert c.cost_usd == pytest.approx(i.cost_usd)
    assert c.net_usd == pytest.approx(i.net_usd)
    assert [r.net_usd for r in result.series] == pytest.approx(
        [r.ideal_net_usd for r in result.series]
    )


TWO_POOLS = {
    **ONE_POOL,
    "site": {"poi_limit_kw": 1500, "settlement_point": "HB_WEST"},  # room for 1.5 of 2 MW
    "pools": [
        {"name": "new", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 20.0},
        {"name": "old", "driver": "modbus", "max_kw": 1000, "efficiency_j_per_th": 30.0,
         "host": "127.0.0.1", "port": 5022, "unit_id": 1},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    "economics",
    [
        {},
        {"hysteresis_usd_per_mwh": 20.0},
        {"min_run_s": 1200, "min_curtail_s": 600},
        {"hysteresis_usd_per_mwh": 10.0, "min_run_s": 300, "min_curtail_s": 1800},
    ],
)
@pytest.mark.parametrize("ramp_kw_per_s", [1_000_000, 5])
def test_ideal_is_never_worse_than_the_controller(
    economics: dict[str, float], ramp_kw_per_s: float
) -> None:
    # breakevens: new 100, old 66.7 $/MWh; prices around both, a negative one, a spike.
    prices = [50, 90, 60, 120, 70, 65, -10, 101, 99, 300, 66, 68, 40, 100, 80, 20]
    data = {
        **TWO_POOLS,
        "economics": {**ONE_POOL["economics"], **economics},  # type: ignore[dict-item]
        "control": {"tick_s": 1.0, "ramp_up_kw_per_s": ramp_kw_per_s},
    }
    result = run_backtest(Config.model_validate(data), series(prices))
    assert result.ideal.net_usd >= result.controller.net_usd - 1e-9
    # per interval too: the ideal is the best any plan could do inside the envelope
    for row in result.series:
        assert row.ideal_net_usd >= row.net_usd - 1e-9
    # and inside the envelope: never more than 1.5 MW, the better pool first
    assert result.ideal.energy_mwh <= 1.5 * result.hours + 1e-9


def test_the_table_has_the_ideal_column() -> None:
    result = run_backtest(Config.model_validate(ONE_POOL), series([150, 50]))
    table = render_table(result, "t")
    head = table.splitlines()[3].split()
    assert head == ["curtaild", "always", "on", "ideal", "difference"]
    net = next(line for line in table.splitlines() if line.startswith("net"))
    assert net.split()[-3:-1] == [f"{result.baseline.net_usd:,.0f}", f"{result.ideal.net_usd:,.0f}"]


# -- the chart's data ------------------------------------------------------------------------


def test_chart_data_breaks_every_line_at_a_gap() -> None:
    jan_2023 = series([50, 150, 50], start=1_672_552_800.0)  # 2023-01-01 00:00 Central
    jan_2024 = series([150, 50], start=1_704_088_800.0)  # 2024-01-01 00:00 Central
    result = run_backtest(Config.model_validate(ONE_POOL), [*jan_2023, *jan_2024])
    data = chart_data(result)
    t0, t1 = jan_2023[0].interval_start, jan_2024[0].interval_start
    # three intervals, a break at the end of the third, two more, and the last one's end
    assert data.times == [t0, t0 + 900, t0 + 1800, t0 + 2700, t1, t1 + 900, t1 + 1800]
    breaks = [3, 6]
    for values in (data.prices, data.load_mw, data.net_usd, data.baseline_net_usd,
                   data.ideal_net_usd):  # fmt: skip
        assert len(values) == len(data.times)
        assert [k for k, v in enumerate(values) if math.isnan(v)] == breaks
    assert data.prices[:3] == [50, 150, 50]
    assert data.prices[4:6] == [150, 50]
    # cumulative nets go on across the gap
    assert data.net_usd[5] == pytest.approx(sum(r.net_usd for r in result.series))
    assert data.ideal_net_usd[5] == pytest.approx(result.ideal.net_usd)
    assert data.baseline_net_usd[5] == pytest.approx(result.baseline.net_usd)


def test_chart_data_has_no_break_inside_contiguous_prices() -> None:
    result = run_backtest(Config.model_validate(ONE_POOL), series([50, 150, 50, 150]))
    data = chart_data(result)
    nan_at = [k for k, v in enumerate(data.prices) if math.isnan(v)]
    assert nan_at == [4]  # only the closing point after the last interval
    assert chart_data(run_backtest(Config.model_validate(ONE_POOL), [])).times == []


@needs_real_data
def test_four_januaries_are_drawn_with_three_breaks() -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    records = read_price_csv(RT_FILE, "HB_WEST", None, None)
    years = {datetime.fromtimestamp(r.interval_start, UTC).year for r in records}
    data = chart_data(run_backtest(config, records))
    breaks = sum(1 for v in data.prices if math.isnan(v))
    assert breaks == len(years)  # one between each pair of Januaries, one closing the last
