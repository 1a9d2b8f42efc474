"""`curtaild backtest` with the value stack: tables, --json, the chart, errors; the real years."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.config_render import render_toml
from controller.value.chart import monthly_stack
from controller.value.ledger import MonthValue, Strategy
from tests.unit.value_support import (
    AS_LONG,
    AS_WIDE,
    HUB,
    REAL_4CP,
    REAL_AS,
    REAL_HUB,
    REAL_LOAD,
    ROOT,
    needs_real_data,
    with_backtest,
)

EXAMPLE = str(ROOT / "config.example.toml")


def config_file(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "site.toml"
    path.write_text(render_toml(data))
    return str(path)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_fixture_days_as_a_table_json_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, with_backtest(offers=[{"product": "RRS", "mw": 0.5}]))
    base = ["--config", config, "--prices", str(HUB), "--reserve-prices", str(AS_WIDE)]
    chart = tmp_path / "value.png"
    code, out, _ = run([*base, "--plot", str(chart)], capsys)
    assert code == 0
    assert "72 hours of prices" in out
    assert "By year ($)" in out and "curtaild + reserves, by month ($)" in out
    assert "Not modelled:" in out and "Deployment energy is not modelled" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, text, _ = run([*base, "--json"], capsys)
    assert code == 0
    doc = json.loads(text)
    names = [s["name"] for s in doc["strategies"]]
    assert names == ["always on", "curtaild", "curtaild + reserves"]
    held = doc["strategies"][2]["years"]["2024"]
    # 0.5 MW held every one of the 72 hours; RRS is 3 + hour ending / 10 $/MW-h
    assert held["reserve_mw_h"] == pytest.approx(36.0)
    expected = sum(0.5 * (3 + he / 10) for he in range(1, 25)) * 3
    assert held["reserve_revenue_usd"] == pytest.approx(expected)
    assert held["net_usd"] == pytest.approx(
        held["mining_revenue_usd"] - held["energy_cost_usd"] + held["reserve_revenue_usd"]
    )
    # the long layout gives the same figures
    code, text, _ = run(["--config", config, "--prices", str(HUB), "--reserve-prices",
                         str(AS_LONG), "--json"], capsys)  # fmt: skip
    assert json.loads(text)["strategies"] == doc["strategies"]


def test_dam_prices_are_valued_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_file(tmp_path, with_backtest())
    code, text, _ = run(["--config", config, "--prices", str(HUB), "--market", "dam", "--json"],
                        capsys)  # fmt: skip
    assert code == 0
    doc = json.loads(text)
    assert doc["prices"] == "HB_WEST day-ahead"
    assert doc["strategies"][0]["total"]["hours"] == pytest.approx(72)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reserve-prices", "{bad}"], "bad.csv:1: unknown CSV layout"),
        (["--4cp", "{bad}"], "bad.csv:1: unknown CSV layout"),
        (["--load", "{bad}", "--4cp", "{bad}"], "bad.csv:1: unknown CSV layout"),
    ],
)
def test_bad_files_exit_2_with_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    extra = [e.replace("{bad}", str(bad)) for e in extra]
    code, _, err = run(["--config", EXAMPLE, "--prices", str(HUB), *extra], capsys)
    assert code == 2
    assert message in err


def test_an_unknown_settlement_point_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = with_backtest()
    data["site"] = {**data["site"], "settlement_point": "LZ_EAST"}
    code, _, err = run(["--config", config_file(tmp_path, data), "--prices", str(HUB)], capsys)
    assert code == 2
    assert "'LZ_EAST' not in file; present: HB_NORTH, HB_WEST" in err


def test_market_flag_outside_the_hourly_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
                   "07/01/2024,01:00,HB_WEST,20,N\n")  # fmt: skip
    code, _, err = run(["--config", EXAMPLE, "--prices", str(csv), "--market", "dam"], capsys)
    assert code == 2
    assert "--market and --allow-gaps apply to the hourly hub-price table only" in err


def test_the_chart_stacks_each_source_against_always_on() -> None:
    always, best = Strategy("always on"), Strategy("best")
    always.months["2024-07"] = MonthValue(energy_cost_usd=50, mining_revenue_usd=100,
                                          fourcp_charge_usd=30)  # fmt: skip
    best.months["2024-07"] = MonthValue(energy_cost_usd=70, mining_revenue_usd=110,
                                        reserve_revenue_usd=25)  # fmt: skip
    data = monthly_stack(best, always)
    assert data.values == {"energy": [-10.0], "reserves": [25.0], "4CP": [30.0]}
    assert data.gain_usd == [pytest.approx(45.0)]  # 65 - 20


# -- the real years --------------------------------------------------------------------------


@needs_real_data
@pytest.mark.parametrize("year", [2024, 2025])
def test_the_example_site_value_stack_on_a_real_year(
    year: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", EXAMPLE, "--prices", str(REAL_HUB), "--from", f"{year}-01-01",
            "--to", f"{year}-12-31", "--allow-gaps", "--4cp", str(REAL_4CP), "--load",
            str(REAL_LOAD), "--json"]  # fmt: skip
    for path in REAL_AS:
        args += ["--reserve-prices", str(path)]
    code, text, _ = run(args, capsys)
    assert code == 0
    doc = json.loads(text)
    assert [g["hours"] for g in doc["gaps"]] == [169]  # the spring-forward week
    years = {s["name"]: s["years"][str(year)] for s in doc["strategies"]}
    always, curtaild = years["always on"], years["curtaild"]
    assert curtaild["net_usd"] > always["net_usd"]  # curtailing on price pays every year
    assert curtaild["energy_cost_usd"] < always["energy_cost_usd"]
    assert years["curtaild + reserves"]["reserve_revenue_usd"] > 50_000
    # the four official intervals, 55 $/kW-year on the 7,084 kW fleet
    assert always["fourcp_charge_usd"] == pytest.approx(55 * 7084)
    foresight = doc["fourcp"]["curtaild + reserves + 4CP foresight"][str(year)]
    causal = doc["fourcp"]["curtaild + reserves + 4CP causal"][str(year)]
    assert foresight["caught"] == 4 and foresight["off_h"] == pytest.approx(1.0)
    assert causal["caught"] == 4  # 0.95 x the month's peak so far, HE16-18, caught them all
    assert causal["off_h"] > 100  # ... at the price of many hours off
    assert (
        foresight["saving_usd"] - foresight["cost_usd"] > causal["saving_usd"] - causal["cost_usd"]
    )


def test_load_without_the_4cp_intervals_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--config", EXAMPLE, "--prices", str(HUB), "--load", str(HUB)], capsys)
    assert code == 2
    assert "--load is for the causal 4CP rule" in err
