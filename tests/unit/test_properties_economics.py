"""Properties of decide() on price: switching inside the hysteresis band and dwell (I7).

Scenarios and the oracle are in `tests.unit.properties`.
"""

from __future__ import annotations

import math

from hypothesis import event, given

from tests.unit.factories import breakeven_usd_per_mwh
from tests.unit.properties.strategies import PRICE_ONLY, Scenario, scenarios
from tests.unit.properties.world import EPS_KW, fail, last_flips, run, was_on

# ---------------------------------------------------------------------------------------------
# I7: hysteresis band and dwell


@given(scenarios(prof=PRICE_ONLY, max_pools=8))
def test_property_price_switching_respects_band_and_dwell(scenario: Scenario) -> None:
    """Price alone: no caps, faults or failsafes; every switch must be the band's and dwell's."""
    cfg = scenario.site.config
    econ = cfg.economics
    half = econ.hysteresis_usd_per_mwh / 2.0
    trace = run(scenario, config=cfg)
    flips = last_flips(trace, cfg)
    pools = {p.name: p for p in cfg.pools}
    for rec in trace:
        price = rec.view.price_usd_per_mwh
        assert price is not None, "every price-only step brings a price"
        assert not rec.decision.plan.failsafe, fail(rec, "failsafe in a price-only scenario")
        before = was_on(rec, cfg)
        for name, target_kw in rec.targets().items():
            be = breakeven_usd_per_mwh(pools[name], rec.view.hashprice, econ.pool_fee)
            since_s = rec.now - flips[rec.index].get(name, -math.inf)
            was, is_on = before[name], target_kw > 0.0
            ps = rec.decision.plan.pools[name]
            if was != is_on:
                event("a pool switched on price")
            if was and not is_on:
                assert price > be + half - 1e-9, fail(
                    rec, f"{name} curtailed at {price!r} <= breakeven {be!r} + h/2 {half!r}"
                )
                assert since_s >= econ.min_run_s, fail(
                    rec, f"{name} curtailed {since_s!r}s after its last change < min_run_s"
                )
            elif is_on and not was:
                assert price < be - half + 1e-9, fail(
                    rec, f"{name} resumed at {price!r} >= breakeven {be!r} - h/2 {half!r}"
                )
                assert since_s >= econ.min_curtail_s, fail(
                    rec, f"{name} resumed {since_s!r}s after its last change < min_curtail_s"
                )
            elif was and price > be + half + 1e-9 and since_s >= econ.min_run_s:
                assert not is_on, fail(rec, f"{name} kept running at {price!r} > be {be!r} + h/2")
            elif not was and price < be - half - 1e-9 and since_s >= econ.min_curtail_s:
                # It wants to run: only the ramp (or a 0 kW pool) may hold it at 0 this step.
                assert ps.reason == "ramp" or pools[name].max_kw <= EPS_KW or is_on, fail(
                    rec, f"{name} not resumed at {price!r} < be {be!r} - h/2 ({ps.reason})"
                )


@given(scenarios())
def test_property_resume_and_price_curtail_respect_band_and_dwell(scenario: Scenario) -> None:
    """CONTRACT 7: whatever curtailed a pool, it resumes only below the band after its dwell
    (or under override `run`); a curtailment labelled `price` must be a price curtailment."""
    cfg = scenario.site.config
    econ = cfg.economics
    half = econ.hysteresis_usd_per_mwh / 2.0
    trace = run(scenario, config=cfg)
    flips = last_flips(trace, cfg)
    pools = {p.name: p for p in cfg.pools}
    for rec in trace:
        price = rec.view.price_usd_per_mwh
        run_override = rec.view.override is not None and rec.view.override.mode == "run"
        before = was_on(rec, cfg)
        for name, target_kw in rec.targets().items():
            be = breakeven_usd_per_mwh(pools[name], rec.view.hashprice, econ.pool_fee)
            since_s = rec.now - flips[rec.index].get(name, -math.inf)
            was, is_on = before[name], target_kw > 0.0
            ps = rec.decision.plan.pools[name]
            if is_on and not was and not run_override:
                assert rec.view.price_fresh and price is not None, fail(
                    rec, f"{name} resumed without a fresh price"
                )
                in_band = price < be - half + 1e-9 and since_s >= econ.min_curtail_s
                if rec.view.floor_kw > 0 and not in_band:
                    # An award brings load on whatever the band (I12): never in price's name.
                    event("a pool resumed for an award")
                    assert ps.reason != "price", fail(rec, f"{name} resumed for 'price'")
                    continue
                assert price < be - half + 1e-9, fail(
                    rec, f"{name} resumed at {price!r} >= breakeven {be!r} - h/2 {half!r}"
                )
                assert since_s >= econ.min_curtail_s, fail(
                    rec, f"{name} resumed {since_s!r}s after its last change < min_curtail_s"
                )
            if was and not is_on and ps.reason == "price":
                assert rec.view.price_fresh and price is not None, fail(
                    rec, f"{name} curtailed for 'price' without a fresh price"
                )
                assert price > be + half - 1e-9 and since_s >= econ.min_run_s, fail(
                    rec,
                    f"{name} curtailed for 'price' at {price!r} (breakeven {be!r}, h/2 {half!r})"
                    f" {since_s!r}s after its last change",
                )
