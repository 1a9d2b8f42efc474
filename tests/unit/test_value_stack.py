"""The value stack against hand computations: reserve floors, 4CP strategies, the causal rule."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from controller.backtest import run_backtest
from controller.config import Config
from controller.errors import UsageError
from controller.feeds.ercot import PriceFileError
from controller.model import PriceRecord
from controller.value.fourcp import causal_off_hours, read_4cp_intervals, read_ercot_load
from controller.value.hours import HOUR_S, day_start_epoch, label
from controller.value.reserve_prices import ReservePrices
from controller.value.stack import StackInputs, ValueStack, compute_stack
from tests.unit.value_support import ONE_POOL, with_backtest, write_4cp, write_load

JULY_1 = day_start_epoch(date(2024, 7, 1))


def hourly(prices: list[float], start: float = JULY_1) -> list[PriceRecord]:
    return [PriceRecord("rt_spp", "HB_WEST", start + 3600 * k, p) for k, p in enumerate(prices)]


def stack_of(data: dict[str, Any], prices: list[float], inputs: StackInputs,
             start: float = JULY_1) -> ValueStack:  # fmt: skip
    config = Config.model_validate(data)
    return compute_stack(config, run_backtest(config, hourly(prices, start), 3600.0), inputs)


def flat_reserves(product: str, usd: float, start: float, hours: int) -> ReservePrices:
    return ReservePrices(prices={start + 3600 * k: {product: usd} for k in range(hours)})


def by_name(stack: ValueStack) -> dict[str, Any]:
    return {s.name: s.total() for s in stack.strategies}


# -- reserves --------------------------------------------------------------------------------


def test_an_award_holds_its_load_through_a_spike_and_earns_the_clearing_price() -> None:
    data = with_backtest(offers=[{"product": "RRS", "mw": 0.6}])
    stack = stack_of(data, [50, 500, 50], StackInputs(flat_reserves("RRS", 10.0, JULY_1, 3)))
    got = by_name(stack)
    assert list(got) == ["always on", "curtaild", "curtaild + reserves"]
    plain, held = got["curtaild"], got["curtaild + reserves"]
    # the 500 $/MWh hour: curtaild is off; the award keeps 0.6 MW on, paid at 500, mining at 100
    assert held.energy_cost_usd - plain.energy_cost_usd == pytest.approx(0.6 * 500)
    assert held.mining_revenue_usd - plain.mining_revenue_usd == pytest.approx(0.6 * 100)
    assert held.reserve_revenue_usd == pytest.approx(3 * 0.6 * 10)
    assert held.reserve_mw_h == pytest.approx(1.8)
    assert held.net_usd - plain.net_usd == pytest.approx(60 - 300 + 18)
    assert plain.reserve_revenue_usd == 0.0
    # always on: 1 MW for 3 h, revenue at the 100 $/MWh breakeven
    assert got["always on"].net_usd == pytest.approx(300 - 600)


TWO_POOLS = {
    **ONE_POOL,
    "pools": [
        {"name": "new", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 20.0},
        {"name": "ufr", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 40.0,
         "ufr": True},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("product", "usd_per_h"),
    [("RRS", 48 * 500 / 40 / 24), ("ECRS", 48 * 500 / 20 / 24), ("NSRS", 48 * 500 / 20 / 24)],
)
def test_rrs_is_held_on_ufr_pools_first_the_others_in_merit_order(
    product: str, usd_per_h: float
) -> None:
    # 1,000 $/MWh every hour: both pools are off on price, so all the awarded load is the floor
    data = {**TWO_POOLS, "backtest": {"offers": [{"product": product, "mw": 0.5}]}}
    reserves = flat_reserves(product, 1.0, JULY_1, 4)
    got = by_name(stack_of(data, [1000.0] * 4, StackInputs(reserves)))["curtaild + reserves"]
    assert got.mining_revenue_usd == pytest.approx(4 * usd_per_h)
    assert got.energy_mwh == pytest.approx(4 * 0.5)


def test_offers_only_in_their_hours_and_a_share_of_the_fleet() -> None:
    # HE02 and HE03 only; half of the 1 MW fleet
    offers = [{"product": "ECRS", "share": 0.5, "hours_ending": [2, 3]}]
    stack = stack_of(with_backtest(offers=offers), [500.0] * 4,
                     StackInputs(flat_reserves("ECRS", 7.0, JULY_1, 4)))  # fmt: skip
    got = by_name(stack)["curtaild + reserves"]
    assert got.reserve_mw_h == pytest.approx(2 * 0.5)
    assert got.reserve_revenue_usd == pytest.approx(2 * 0.5 * 7.0)


def test_no_market_in_an_hour_means_no_award_and_a_note() -> None:
    reserves = flat_reserves("ECRS", 7.0, JULY_1, 2)
    reserves.prices[JULY_1 + 3600] = {"ECRS": None}
    data = with_backtest(offers=[{"product": "ECRS", "mw": 1.0}])
    stack = stack_of(data, [500.0, 500.0], StackInputs(reserves))
    assert by_name(stack)["curtaild + reserves"].reserve_mw_h == pytest.approx(1.0)
    assert any("ECRS had no clearing price in 1 offered" in note for note in stack.notes)


def test_an_hour_without_clearing_prices_names_the_files() -> None:
    reserves = flat_reserves("RRS", 1.0, JULY_1, 1)
    reserves.files = ["as-2023.csv"]
    with pytest.raises(
        PriceFileError,
        match=r"as-2023.csv: no clearing prices for 2024-07-01 HE02; the files cover 2024-07-01 HE01",
    ):
        stack_of(
            with_backtest(offers=[{"product": "RRS", "mw": 1.0}]), [20, 20], StackInputs(reserves)
        )


def test_offers_beyond_the_fleet_or_without_a_strategy_are_refused() -> None:
    reserves = StackInputs(flat_reserves("RRS", 1.0, JULY_1, 1))
    with pytest.raises(UsageError, match=r"total 1\.5 MW, more than the fleet's 1 MW"):
        stack_of(with_backtest(offers=[{"product": "RRS", "mw": 1.5}]), [20], reserves)
    with pytest.raises(UsageError, match=r"needs an offer strategy"):
        stack_of(ONE_POOL, [20], reserves)


def test_an_offer_needs_exactly_one_quantity() -> None:
    for offer in ({"product": "RRS"}, {"product": "RRS", "mw": 1.0, "share": 0.5}):
        with pytest.raises(ValueError, match="exactly one of mw or share"):
            Config.model_validate(with_backtest(offers=[offer]))
    with pytest.raises(ValueError, match="REGUP"):
        Config.model_validate(with_backtest(offers=[{"product": "REGUP", "mw": 1.0}]))


# -- 4CP -------------------------------------------------------------------------------------


def ramp_load(month: int, day: int, hour: int) -> float:
    """Rises through each day to its HE24 peak; July 10 and 11 have an afternoon spike."""
    if (month, day, hour) == (7, 10, 15):
        return 70_000.0
    if (month, day, hour) == (7, 11, 15):
        return 67_000.0
    if (month, day, hour) == (7, 12, 15):
        return 66_000.0
    return 40_000.0 + 1000.0 * hour


def test_the_causal_rule_uses_only_the_hour_before_and_the_month_so_far(tmp_path: Path) -> None:
    path = write_load(tmp_path / "load.csv", 2024, ramp_load)
    load = read_ercot_load(path)
    off = causal_off_hours(load, [2024], 0.95, [16], str(path))
    # Each month's first day: the hour before is the peak so far. July 10: 70,000 is a new peak;
    # July 11: 67,000 >= 0.95 x 70,000; July 12: 66,000 is under it.
    assert [label(t) for t in off] == [
        "2024-06-01 HE16", "2024-07-01 HE16", "2024-07-10 HE16", "2024-07-11 HE16",
        "2024-08-01 HE16", "2024-09-01 HE16",
    ]  # fmt: skip
    assert causal_off_hours(load, [2024], 1.01, [16], str(path)) == []
    del load[day_start_epoch(date(2024, 8, 5)) + 14 * HOUR_S]  # HE15, needed for HE16
    with pytest.raises(PriceFileError, match=r"load.csv: no ERCOT load for 2024-08-05 HE15"):
        causal_off_hours(load, [2024], 0.95, [16], str(path))


def test_4cp_strategies_against_always_on(tmp_path: Path) -> None:
    # One official interval in the replay: 2024-07-10 15:00-15:15, inside HE16.
    peaks = read_4cp_intervals(write_4cp(tmp_path / "4cp.csv", [
        (2024, 7, "2024-07-10", "15:00", "15:15"), (2024, 8, "2024-08-20", "16:45", "17:00")]))  # fmt: skip
    load = read_ercot_load(write_load(tmp_path / "load.csv", 2024, ramp_load))
    data = with_backtest(transmission_usd_per_kw_year=120.0, fourcp_hours_ending=[16])
    start = day_start_epoch(date(2024, 7, 10))
    stack = stack_of(data, [20.0] * 24, StackInputs(None, peaks, load, "load.csv"), start)
    got = by_name(stack)
    names = ["always on", "curtaild", "curtaild + 4CP foresight", "curtaild + 4CP causal"]
    assert list(got) == names
    # 120 $/kW-year x 1,000 kW at the one interval valued, a quarter of the year's charge
    assert got["always on"].fourcp_charge_usd == pytest.approx(120 * 1000 / 4)
    assert got["curtaild"].fourcp_charge_usd == pytest.approx(120 * 1000 / 4)
    for name in names[2:]:
        assert got[name].fourcp_charge_usd == 0.0
    margin_usd_per_h = 1.0 * (100 - 20)  # 1 MW at a 100 $/MWh breakeven, 20 $/MWh energy
    foresight = stack.fourcp["curtaild + 4CP foresight"][2024]
    causal = stack.fourcp["curtaild + 4CP causal"][2024]
    assert (foresight.caught, foresight.peaks_valued, foresight.off_h) == (1, 1, 0.25)
    assert foresight.cost_usd == pytest.approx(0.25 * margin_usd_per_h)
    assert (causal.caught, causal.off_h) == (1, 1.0)  # July 10 HE16 only, within the replay
    assert causal.cost_usd == pytest.approx(margin_usd_per_h)
    assert causal.saving_usd == foresight.saving_usd == pytest.approx(30_000)
    assert got["curtaild + 4CP causal"].fourcp_off_h == pytest.approx(1.0)
    assert any("4CP 2024: 1 of the 4 intervals" in note for note in stack.notes)


def test_a_causal_miss_pays_the_charge(tmp_path: Path) -> None:
    peaks = read_4cp_intervals(
        write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-10", "17:00", "17:15")])
    )
    load = read_ercot_load(write_load(tmp_path / "load.csv", 2024, ramp_load))
    data = with_backtest(transmission_usd_per_kw_year=120.0, fourcp_hours_ending=[16])
    start = day_start_epoch(date(2024, 7, 10))
    stack = stack_of(data, [20.0] * 24, StackInputs(None, peaks, load, "load.csv"), start)
    causal = stack.fourcp["curtaild + 4CP causal"][2024]
    assert causal.caught == 0  # off in HE16, the peak was in HE18
    assert causal.charge_usd == pytest.approx(30_000)
    assert causal.saving_usd - causal.cost_usd == pytest.approx(-80)


def test_4cp_with_reserves_forfeits_the_award_while_off(tmp_path: Path) -> None:
    peaks = read_4cp_intervals(
        write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-10", "15:00", "15:15")])
    )
    start = day_start_epoch(date(2024, 7, 10))
    data = with_backtest(transmission_usd_per_kw_year=120.0, offers=[{"product": "RRS", "mw": 1.0}])
    inputs = StackInputs(flat_reserves("RRS", 8.0, start, 24), peaks)
    stack = stack_of(data, [20.0] * 24, inputs, start)
    got = by_name(stack)
    assert "curtaild + reserves + 4CP foresight" in got
    assert "4CP causal rule: not run (no --load file)" in stack.notes
    lost = (
        got["curtaild + reserves"].reserve_revenue_usd
        - got["curtaild + reserves + 4CP foresight"].reserve_revenue_usd
    )
    assert lost == pytest.approx(0.25 * 1.0 * 8.0)


def test_a_share_offer_is_a_share_of_the_mining_the_day_ahead_price_would_run() -> None:
    # breakevens: new 100, ufr 50 $/MWh; day-ahead 75 runs `new` (1 MW), 30 both, 150 none
    data = {**TWO_POOLS, "backtest": {"offers": [{"product": "ECRS", "share": 0.5}]}}
    dam = {JULY_1 + 3600 * k: price for k, price in enumerate([75.0, 30.0, 150.0])}
    inputs = StackInputs(flat_reserves("ECRS", 2.0, JULY_1, 4), dam=dam)
    stack = stack_of(data, [20.0] * 4, inputs)
    got = by_name(stack)["curtaild + reserves"]
    assert got.reserve_mw_h == pytest.approx(0.5 + 1.0 + 0.0)  # the 4th hour has no DAM price
    assert got.reserve_revenue_usd == pytest.approx(1.5 * 2.0)
    assert "reserves: 1 share offers not made (no day-ahead price that hour)" in stack.notes


def test_15_minute_prices_earn_the_hour_s_clearing_price_per_quarter(tmp_path: Path) -> None:
    # Four 15-minute intervals of one hour, 2024-07-10 HE16; the official interval is the 3rd.
    start = day_start_epoch(date(2024, 7, 10)) + 15 * HOUR_S
    records = [PriceRecord("rt_spp", "HB_WEST", start + 900 * k, 20.0) for k in range(4)]
    peaks = read_4cp_intervals(
        write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-10", "15:30", "15:45")])
    )
    data = with_backtest(transmission_usd_per_kw_year=120.0, offers=[{"product": "RRS", "mw": 1.0}])
    config = Config.model_validate(data)
    stack = compute_stack(config, run_backtest(config, records),
                          StackInputs(flat_reserves("RRS", 8.0, start, 1), peaks))  # fmt: skip
    got = by_name(stack)
    assert got["curtaild + reserves"].reserve_revenue_usd == pytest.approx(8.0)  # 1 MW x 1 h
    foresight = got["curtaild + reserves + 4CP foresight"]
    assert foresight.fourcp_off_h == pytest.approx(0.25)  # exactly the third quarter
    assert foresight.reserve_revenue_usd == pytest.approx(6.0)  # that quarter's award forfeited
    assert got["curtaild + reserves"].fourcp_charge_usd == pytest.approx(120 * 1000 / 4)
    assert foresight.fourcp_charge_usd == 0.0


def test_a_zero_transmission_rate_is_noted(tmp_path: Path) -> None:
    peaks = read_4cp_intervals(
        write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-01", "00:15", "00:30")])
    )
    stack = stack_of(ONE_POOL, [20.0], StackInputs(None, peaks))
    assert "4CP: transmission_usd_per_kw_year is 0 in [backtest]: no charge" in stack.notes


def test_the_4cp_table_has_the_no_action_reference_first(tmp_path: Path) -> None:
    # A price spike at the official interval: curtaild is off on price there, and that counts.
    peaks = read_4cp_intervals(
        write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-01", "01:15", "01:30")])
    )
    data = with_backtest(transmission_usd_per_kw_year=120.0)
    stack = stack_of(data, [20.0, 900.0, 20.0], StackInputs(None, peaks))
    assert list(stack.fourcp) == ["curtaild", "curtaild + 4CP foresight"]
    reference = stack.fourcp["curtaild"][2024]
    assert (reference.caught, reference.off_h, reference.cost_usd, reference.charge_usd) == (
        1,
        0,
        0,
        0,
    )
    always = next(s for s in stack.strategies if s.name == "always on")
    assert always.peak_kw == {peaks[2024][0].start: 1000.0}
    assert always.as_dict()["fourcp_load_kw"] == {"2024-07-01 01:15": 1000.0}


def test_rrs_without_a_ufr_pool_is_noted() -> None:
    data = with_backtest(offers=[{"product": "RRS", "mw": 0.5}])
    stack = stack_of(data, [20.0], StackInputs(flat_reserves("RRS", 1.0, JULY_1, 1)))
    assert any("no pool has ufr = true" in note for note in stack.notes)
