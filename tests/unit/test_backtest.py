"""Backtest figures against hand-computed expectations, and on the real January 2024 prices."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from controller.backtest import run_backtest
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


def series(prices: list[float], start: float = 1_700_000_000.0) -> list[PriceRecord]:
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
    assert [round(kw) for _, _, kw in result.series] == [round(1000 * 899 / 900), 0, 1000, 0]


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
    peak = max(result.series, key=lambda row: row[1])
    assert peak[1] == pytest.approx(1174.66)  # the 2024-01-16 18:15 interval
    assert peak[2] == 0.0  # nothing mined at the peak


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
