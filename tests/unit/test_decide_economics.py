"""Table tests for price economics, overrides and ramping (I4, I7, I8, CONTRACT 7)."""

from __future__ import annotations

import itertools

import pytest

from controller.core.site import compile_site
from tests.unit.harness import SiteSim, make_config

# hashprice 50, fee 0.02: breakeven = 50 x 0.98 x 1000 / (24 x J/TH)
BREAKEVEN = {"eff": 120.098, "mid": 92.803, "old": 68.056}


def test_breakeven_follows_the_contract_formula() -> None:
    site = compile_site(make_config())
    for name, expected in BREAKEVEN.items():
        assert site.by_name[name].breakeven_usd_per_mwh(50.0) == pytest.approx(expected, abs=1e-3)


def test_strike_overrides_the_computed_breakeven_and_the_merit_order() -> None:
    pools = make_config().model_dump()["pools"]
    pools[2]["strike_usd_per_mwh"] = 500.0  # "old" sold forward: run it first
    sim = SiteSim(make_config(pools=pools))
    sim.price = 200.0
    sim.run(3)
    assert sim.targets() == {"eff": 0, "mid": 0, "old": 6000}
    site = compile_site(sim.config)
    assert site.merit_order(50.0)[0].name == "old"


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (60.0, {"eff": 6000, "mid": 6000, "old": 6000}),
        (80.0, {"eff": 6000, "mid": 6000, "old": 0}),
        (110.0, {"eff": 6000, "mid": 0, "old": 0}),
        (200.0, {"eff": 0, "mid": 0, "old": 0}),
        (-20.0, {"eff": 6000, "mid": 6000, "old": 6000}),
    ],
)
def test_price_merit_order(price: float, expected: dict[str, float]) -> None:
    sim = SiteSim(make_config())
    sim.price = price
    sim.run(3)
    assert sim.targets() == expected


def test_hysteresis_band_is_centred_on_breakeven() -> None:
    sim = SiteSim(make_config())  # h = 10: run until be + 5, resume below be - 5
    sim.price = 60.0
    sim.run(3)
    sim.price = BREAKEVEN["old"] + 4.9  # inside the band: a running pool keeps running
    sim.run(2)
    assert sim.targets()["old"] == 6000
    sim.price = BREAKEVEN["old"] + 5.1
    sim.run(1)
    assert sim.targets()["old"] == 0
    sim.price = BREAKEVEN["old"] - 4.9  # inside the band: a curtailed pool stays curtailed
    sim.run(2)
    assert sim.targets()["old"] == 0
    sim.price = BREAKEVEN["old"] - 5.1
    sim.run(1)
    assert sim.targets()["old"] == 6000


def test_min_run_and_min_curtail_hold_price_switching() -> None:
    sim = SiteSim(make_config(economics={"min_run_s": 100, "min_curtail_s": 50}))
    sim.price = 60.0
    sim.run(3)  # pools start at t0+2 (the first decision never raises)
    sim.price = 500.0
    sim.run(90)
    assert sim.targets()["old"] == 6000  # ran for < 100 s: price alone waits
    sim.run(15)
    assert sim.targets()["old"] == 0
    sim.price = 60.0
    sim.run(40)
    assert sim.targets()["old"] == 0  # curtailed for < 50 s
    sim.run(15)
    assert sim.targets()["old"] == 6000


def test_dwell_counts_from_a_dispatch_curtailment_too() -> None:
    sim = SiteSim(make_config(economics={"min_run_s": 0, "min_curtail_s": 60}))
    sim.run(3)
    sim.dispatch("CLR", "C", mw=0.0, end=sim.now + 10)
    sim.run(12)
    assert sim.mining_kw == 0
    sim.run(20)  # the obligation ended but the pools were cut < 60 s ago
    assert sim.mining_kw == 0
    sim.run(45)
    assert sim.mining_kw == 18000


def test_price_stale_hold_keeps_state_and_flags_failsafe() -> None:
    sim = SiteSim(make_config(feeds={"price_stale_s": 30, "on_price_stale": "hold"}))
    sim.run(3)
    from dataclasses import replace

    from controller.core.decide import decide

    assert sim.state is not None
    snap = sim.snapshot()
    assert snap.price is not None
    stale = replace(snap, price=replace(snap.price, received_at=sim.now - 100))
    decision = decide(stale, sim.state, sim.now + 1, sim.site)
    assert "price_stale" in decision.plan.failsafe
    assert decision.plan.mining_target_kw == 18000


def test_price_stale_curtail_sheds_all_mining() -> None:
    sim = SiteSim(make_config(feeds={"price_stale_s": 10, "on_price_stale": "curtail"}))
    sim.price = None  # never a price: stale once price_stale_s passed since start
    sim.run(5)
    assert sim.mining_kw == 0
    decision = sim.run(10)
    assert "price_stale" in decision.plan.failsafe
    assert decision.plan.mining_cap_kw == 0


def test_no_price_yet_holds_without_failsafe() -> None:
    sim = SiteSim(make_config())
    sim.price = None
    decision = sim.run(5)
    assert decision.plan.failsafe == frozenset()
    assert sim.mining_kw == 0


def test_override_curtail_then_expires_and_returns_through_the_band() -> None:
    sim = SiteSim(make_config())
    sim.run(3)
    sim.override("curtail", ttl_s=20)
    decision = sim.step()
    assert decision.plan.binding == "override"
    assert sim.mining_kw == 0
    sim.run(25)
    assert sim.last is not None
    assert sim.last.next_state.override is None
    assert sim.mining_kw == 18000


def test_override_limit_lowers_but_never_raises_the_cap() -> None:
    sim = SiteSim(make_config())
    sim.run(3)
    sim.override("limit", limit_kw=7000)
    assert sim.step().plan.mining_cap_kw == pytest.approx(7000)
    sim.override("limit", limit_kw=90000)
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(18500)  # the envelope still binds


def test_override_run_ignores_price_but_not_dispatch() -> None:
    sim = SiteSim(make_config())
    sim.price = 900.0
    sim.run(3)
    assert sim.mining_kw == 0
    sim.override("run")
    sim.run(2)
    assert sim.mining_kw == 18000
    sim.dispatch("CLR", "C", mw=5.0)
    sim.run(2)
    assert sim.mining_kw == 5000
    sim.override("auto")
    sim.run(2)
    assert sim.mining_kw == 0


def test_ramp_up_is_staggered_and_ramp_down_immediate() -> None:
    sim = SiteSim(make_config(control={"ramp_up_kw_per_s": 2000}))
    totals = [sim.step().plan.mining_target_kw for _ in range(12)]
    steps = [b - a for a, b in itertools.pairwise(totals)]
    assert max(steps) <= 2000 + 1e-6
    assert totals[-1] == 18000
    assert sim.last is not None
    assert any(ps.reason == "ramp" for ps in sim.last.plan.pools.values()) or totals[-1] == 18000
    sim.price = 900.0
    sim.step()
    assert sim.mining_kw == 0  # down in one decision


def test_ramping_pool_state_and_reason() -> None:
    sim = SiteSim(make_config(control={"ramp_up_kw_per_s": 1000}))
    sim.run(3)
    assert sim.last is not None
    eff = sim.last.plan.pools["eff"]
    assert (eff.state, eff.reason) == ("ramping", "ramp")
