"""Properties of decide() under grid dispatch: reductions (I5) and frequency trips (I11).

Scenarios and the oracle are in `tests.unit.properties`.
"""

from __future__ import annotations

from hypothesis import event, given

from tests.unit.properties.strategies import REDUCTION_FOCUS, Scenario, scenarios
from tests.unit.properties.world import fail, run, slack

# ---------------------------------------------------------------------------------------------
# I5: reduction deployments


@given(scenarios(prof=REDUCTION_FOCUS))
def test_property_reduction_deployment_never_exceeded(scenario: Scenario) -> None:
    """I5: during RRS/ECRS/NSRS/ERS, mining stays at or under level at receipt - mw, even with
    falling prices, resends, recalls of other ids, EEA messages and overlapping deployments."""
    deployments = 0
    for rec in run(scenario):
        total_kw = sum(rec.targets().values())
        n = len(rec.decision.plan.pools)
        for ob_id, cap_kw in rec.view.reductions:
            deployments += 1
            assert total_kw <= cap_kw + slack(n, cap_kw), fail(
                rec,
                f"reduction {ob_id}: mining target {total_kw!r} > level at receipt - mw "
                f"= {cap_kw!r} (price {rec.view.price_usd_per_mwh!r})",
            )
            listed = {o.id for o in rec.decision.next_state.obligations}
            assert ob_id in listed, fail(rec, f"active deployment {ob_id} is not listed")
    event(f"reduction deployments active: {'yes' if deployments else 'no'}")


# ---------------------------------------------------------------------------------------------
# I11 frequency


@given(scenarios())
def test_property_ufr_pools_trip_at_or_below_trip_frequency(scenario: Scenario) -> None:
    """I11: at or below trip_hz every ufr pool is cut (target 0, PDUs cut, `tripped`) and stays
    so until frequency has been above reset_hz for reset_s; only ufr pools ever trip."""
    cfg = scenario.site.config
    ufr = {p.name for p in cfg.pools if p.ufr}
    for rec in run(scenario):
        plan = rec.decision.plan
        for name, ps in plan.pools.items():
            if name in ufr and rec.view.ufr_must_trip:
                event("a ufr pool must be tripped")
                assert ps.target_kw == 0.0, fail(rec, f"{name}: ufr pool not cut")
                assert ps.state == "tripped", fail(rec, f"{name}: ufr pool state {ps.state}")
                assert ps.cut, fail(rec, f"{name}: ufr pool's PDUs not cut")
            if ps.state == "tripped":
                assert name in ufr, fail(rec, f"{name}: a pool without ufr tripped")
                assert rec.view.trip_seen, fail(rec, f"{name}: tripped with no low frequency")
