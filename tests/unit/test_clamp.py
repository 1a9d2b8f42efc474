"""The last check of a plan before it is applied (core/clamp.py): hand-built bad plans are
refused with a message naming the pool or the sum; sound plans, and the plans decide() makes,
pass."""

from __future__ import annotations

import math

import pytest

from controller.core.clamp import PlanViolation, check_plan, plan_violations
from controller.core.plan import Plan
from controller.core.site import SiteModel, compile_site
from controller.core.state import NEVER, PoolState
from controller.sim.configs import PoolShape, build_config, site_data
from tests.unit.harness import SiteSim, make_config

T0 = 1_700_000_000.0


def site() -> SiteModel:
    """a: setpoint pool of 3000 kW; b: 4-outlet pool of 40 kW (10 kW outlets)."""
    shapes = [PoolShape("a", max_kw=3000.0), PoolShape("b", "pdu", 40.0, outlets=4, outlet_kw=10.0)]
    return compile_site(build_config(site_data(shapes, poi_limit_kw=10000.0)))


def commanded(target_kw: float, outlets_on: int | None = None) -> PoolState:
    return PoolState(
        target_kw=target_kw, seq=1, on=target_kw > 0, target_at=T0, outlets_on=outlets_on
    )


def plan(pools: dict[str, PoolState], cap_kw: float = 3040.0) -> Plan:
    total_kw = sum(ps.target_kw for ps in pools.values())
    return Plan(T0, 20.0, cap_kw, "safety", 0.0, cap_kw, total_kw, total_kw, pools, frozenset())


def refused(p: Plan) -> str:
    with pytest.raises(PlanViolation) as caught:
        check_plan(p, site())
    assert isinstance(caught.value, ValueError)  # an internal error, as decide() raises them
    return str(caught.value)


def test_a_sound_plan_passes() -> None:
    check_plan(plan({"a": commanded(3000.0), "b": commanded(40.0, 4)}), site())
    check_plan(plan({"a": commanded(0.0), "b": commanded(0.0, 0)}, cap_kw=0.0), site())
    assert plan_violations(plan({"a": commanded(1000.0), "b": commanded(20.0, 2)}), site()) == []


@pytest.mark.parametrize(
    ("target_kw", "words"),
    [(3000.5, "a: target 3000.5 kW outside 0..3000.0"), (-1.0, "a: target -1.0 kW outside"),
     (math.nan, "a: target nan kW"), (math.inf, "a: target inf kW")],
)  # fmt: skip
def test_a_target_outside_its_pool_range_or_not_finite_is_refused(
    target_kw: float, words: str
) -> None:
    message = refused(plan({"a": commanded(target_kw), "b": commanded(0.0, 0)}, cap_kw=1e9))
    assert words in message


def test_targets_summing_above_the_cap_are_refused() -> None:
    message = refused(plan({"a": commanded(2000.0), "b": commanded(40.0, 4)}, cap_kw=2000.0))
    assert "sum of targets 2040.0 kW above the mining cap 2000.0 kW" in message


def test_float_rounding_under_the_cap_passes() -> None:
    check_plan(plan({"a": commanded(2000.0 + 1e-7), "b": commanded(0.0, 0)}, cap_kw=2000.0), site())


def test_a_cap_that_is_not_finite_is_refused() -> None:
    assert "mining cap nan kW is not finite" in refused(plan({"a": commanded(0.0)}, math.nan))
    assert "mining cap inf kW is not finite" in refused(plan({"a": commanded(0.0)}, math.inf))


def test_an_unknown_pool_is_refused() -> None:
    assert "ghost: not a configured pool" in refused(plan({"ghost": commanded(0.0)}))


def test_every_fault_is_named() -> None:
    message = refused(plan({"a": commanded(3500.0), "b": commanded(-2.0, 0)}, cap_kw=100.0))
    assert "a: target 3500.0" in message
    assert "b: target -2.0" in message
    assert "sum of targets" in message


def test_a_measured_target_never_commanded_may_exceed_max_kw_but_not_the_cap() -> None:
    """Seeded from telemetry (target_at NEVER): a measure, not a command; the applier never
    sends it. An offline pool drawing more than rated is kept so while it fits the cap."""
    measured = PoolState(target_kw=3100.0, on=True, state="running")
    assert measured.target_at == NEVER
    check_plan(plan({"a": measured, "b": commanded(0.0, 0)}, cap_kw=3200.0), site())
    assert "sum of targets" in refused(plan({"a": measured}, cap_kw=3000.0))
    not_finite = PoolState(target_kw=math.inf, on=True, state="running")
    assert "a: measured target inf kW" in refused(plan({"a": not_finite}, cap_kw=1e9))


def test_the_plans_decide_makes_pass() -> None:
    sim = SiteSim(make_config())
    sim.power_kw.update({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
    for _ in range(10):
        decision = sim.step()
        assert plan_violations(decision.plan, sim.site) == []
    sim.dispatch("ECRS", "D1", mw=10.0)
    decision = sim.step()
    assert plan_violations(decision.plan, sim.site) == []
