"""Shared by the value-stack tests: fixture paths, the real files, small configs and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "value"
HUB = FIXTURES / "hub_hourly_2024-11-02_04.csv"
AS_WIDE = FIXTURES / "as_np4-181-er_2024-11-02_04.csv"
AS_LONG = FIXTURES / "as_np4-188-cd_2024-11-02_04.csv"

REAL = ROOT.parent / "shared" / "data" / "ercot" / "value-stack"
REAL_HUB = (
    REAL / "ercot_hourly_spp_HB_WEST_HB_NORTH_LZ_WEST_2024-01-01_2026-03-17_from_lanxindeng8.csv"
)
REAL_AS = [
    REAL / "DAMASMCPC_2024.csv",
    REAL / "DAMASMCPC_2025_jan01_apr12.csv",
    REAL / "ercot_dam_as_mcpc_2025-04-13_2026-02-14_from_lanxindeng8.csv",
]
REAL_4CP = REAL / "ercot_4cp_intervals_2021_2025.csv"
REAL_LOAD = REAL / "ercot_NP6-346-CD_actual_load_by_forecast_zone_hourly_2021_2025.csv"
needs_real_data = pytest.mark.skipif(
    not REAL_HUB.exists(),
    reason="../shared/data/ercot/value-stack not present (real ERCOT data lives outside)",
)

# One 1 MW pool, breakeven 100 $/MWh (48 $/PH-day at 20 J/TH, no fee), no dwell, no ramp
# limit: the replay switches exactly at each hour's start (after the very first second).
ONE_POOL: dict[str, Any] = {
    "site": {"poi_limit_kw": 5000, "settlement_point": "HB_WEST"},
    "economics": {"hashprice_usd_per_ph_day": 48.0, "pool_fee": 0.0,
                  "hysteresis_usd_per_mwh": 0.0, "min_run_s": 0, "min_curtail_s": 0},
    "control": {"tick_s": 1.0, "ramp_up_kw_per_s": 1_000_000},
    "pools": [{"name": "p", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 20.0}],
}  # fmt: skip


def with_backtest(**backtest: Any) -> dict[str, Any]:
    return {**ONE_POOL, "backtest": backtest}


def write_hub(path: Path, rows: list[tuple[str, int, str]], point: str = "HB_WEST") -> Path:
    """An hourly hub table of (date, hour ending, RT price text) rows; DAM = RT."""
    lines = [f"delivery_date,hour_ending,{point}_RT_hourly_mean_spp,{point}_DAM_spp"]
    lines += [f"{day},{hour},{price},{price}" for day, hour, price in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_load(path: Path, year: int, mw_at: Any) -> Path:
    """An NP6-346-CD file for June-September of `year`: TOTAL = mw_at(month, day, hour_ending)."""
    import calendar  # noqa: PLC0415

    lines = ["OperDay,HourEnding,NORTH,SOUTH,WEST,HOUSTON,TOTAL,DSTFlag"]
    for month in (6, 7, 8, 9):
        for day in range(1, calendar.monthrange(year, month)[1] + 1):
            for hour in range(1, 25):
                mw = mw_at(month, day, hour)
                lines.append(f"{month:02d}/{day:02d}/{year},{hour:02d}:00,0,0,0,0,{mw:.2f},N")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_4cp(path: Path, rows: list[tuple[int, int, str, str, str]]) -> Path:
    """(year, month, date, interval start, interval ending) rows of the 4CP intervals file."""
    lines = ["year,month,cp_date,interval_start_cpt,interval_ending_cpt,cp_mw"]
    lines += [f"{y},{m},{d},{s},{e},70000" for y, m, d, s, e in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
