"""Properties of the value stack under random prices, offers and 4CP intervals.

Whatever the prices: the award floor only ever adds running load (never below the plan, never
above the fleet), each strategy's net is its parts, a reserve MW-hour is paid its hour's
clearing price, and going off for 4CP never raises the 4CP charge.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.backtest import run_backtest
from controller.config import Config
from controller.model import PriceRecord
from controller.value.fourcp import CoincidentPeak
from controller.value.hours import day_start_epoch
from controller.value.reserve_prices import ReservePrices
from controller.value.stack import StackInputs, compute_stack
from tests.unit.value_support import ONE_POOL

START = day_start_epoch(date(2024, 7, 1))
POOLS = [
    {"name": "a", "driver": "mqtt", "max_kw": 1000, "efficiency_j_per_th": 20.0},
    {"name": "b", "driver": "mqtt", "max_kw": 800, "efficiency_j_per_th": 30.0, "ufr": True},
]

prices = st.lists(st.sampled_from([-20.0, 10.0, 45.0, 70.0, 99.0, 150.0, 900.0]),
                  min_size=2, max_size=24)  # fmt: skip
offers = st.lists(
    st.fixed_dictionaries({
        "product": st.sampled_from(["RRS", "ECRS", "NSRS"]),
        "share": st.sampled_from([0.1, 0.25, 0.3]),
        "hours_ending": st.lists(st.integers(1, 24), min_size=1, max_size=24, unique=True),
    }),
    min_size=1, max_size=3,
)  # fmt: skip


@given(prices, offers, st.floats(0.0, 50.0), st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
def test_property_value_stack(
    hourly: list[float], offer_list: list[dict[str, object]], clearing: float, cp_hour: int,
    cp_minute: int,
) -> None:  # fmt: skip
    data = {**ONE_POOL, "pools": POOLS,
            "backtest": {"transmission_usd_per_kw_year": 100.0, "offers": offer_list}}  # fmt: skip
    config = Config.model_validate(data)
    records = [PriceRecord("rt_spp", "HB_WEST", START + 3600 * k, p) for k, p in enumerate(hourly)]
    result = run_backtest(config, records, 3600.0)
    hours = len(hourly)
    reserves = ReservePrices(
        prices={
            START + 3600 * k: dict.fromkeys(("RRS", "ECRS", "NSRS"), clearing) for k in range(hours)
        }
    )
    peak_hour = cp_hour % hours
    peaks = {2024: [CoincidentPeak(2024, 7, START + 3600 * peak_hour + 60 * cp_minute)]}
    stack = compute_stack(config, result, StackInputs(reserves, peaks))
    by = {s.name: s for s in stack.strategies}
    plain, held = by["curtaild"].total(), by["curtaild + reserves"].total()
    foresight = by["curtaild + reserves + 4CP foresight"].total()
    fleet_mwh = 1.8 * hours
    # the floor only adds load, within the fleet
    assert plain.energy_mwh - 1e-9 <= held.energy_mwh <= fleet_mwh + 1e-9
    # each MW-hour awarded is paid the clearing price
    assert held.reserve_revenue_usd == pytest.approx(held.reserve_mw_h * clearing, abs=1e-6)
    for s in stack.strategies:
        v = s.total()
        parts = (
            v.mining_revenue_usd - v.energy_cost_usd + v.reserve_revenue_usd - v.fourcp_charge_usd
        )
        assert v.net_usd == pytest.approx(parts)
        assert v.hours == pytest.approx(hours)
    # off for 4CP: no charge, a quarter hour off, never more energy
    assert foresight.fourcp_charge_usd == 0.0
    assert foresight.fourcp_off_h == pytest.approx(0.25)
    assert foresight.energy_mwh <= held.energy_mwh + 1e-9
    assert held.fourcp_charge_usd <= 100.0 * 1800 / 4 + 1e-6
