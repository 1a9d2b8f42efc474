"""Properties of decide(): when a pool target may rise (I3, I6, I8).

Raising is staggered at the ramp rate, the first decision after a restart never commands
above what telemetry proves is on, and the hold failsafes (site meter stale, dispatch feed
stale under `hold`, decision budget) raise nothing. Scenarios and the oracle are in
`tests.unit.properties`.
"""

from __future__ import annotations

import itertools

from hypothesis import event, given

from tests.unit.factories import outlet_capacity_kw
from tests.unit.properties.strategies import Scenario, scenarios
from tests.unit.properties.world import EPS_KW, fail, run, slack

# ---------------------------------------------------------------------------------------------
# I8 ramp, I3 never raise


@given(scenarios())
def test_property_ramp_up_is_staggered(scenario: Scenario) -> None:
    """I8: raising is staggered at ramp_up_kw_per_s; lowering is immediate.

    The core raises in steps: at most ramp_up_kw_per_s x tick_s per decision, and decisions that
    raise at least tick_s apart, so over any window W the total rise is at most
    ramp x (W + tick_s). (A per-decision bound of ramp x min(dt, tick_s) does not hold by design:
    an event decision 0.05 s after a tick may carry a whole step.)
    """
    cfg = scenario.site.config
    ramp = cfg.control.ramp_up_kw_per_s
    tick_s = cfg.control.tick_s
    step_kw = ramp * tick_s
    last_raise_at: float | None = None
    for rec in run(scenario, config=cfg):
        previous = rec.previous_targets()
        targets = rec.targets()
        if previous is None:
            continue  # see test_property_restart_never_raises_above_telemetry
        rise_kw = sum(max(0.0, targets[n] - previous[n]) for n in targets)
        assert rise_kw <= step_kw + slack(len(targets), step_kw), fail(
            rec, f"targets rose by {rise_kw!r} kW in one decision; a ramp step is {step_kw!r} kW"
        )
        if rise_kw > slack(len(targets)):
            event("targets rose")
            if last_raise_at is not None:
                gap_s = rec.now - last_raise_at
                assert gap_s >= tick_s - 1e-6, fail(
                    rec, f"raised by {rise_kw!r} kW only {gap_s!r}s after the last raise"
                )
            last_raise_at = rec.now


@given(scenarios(min_steps=1, max_steps=1))
def test_property_restart_never_raises_above_telemetry(scenario: Scenario) -> None:
    """I6: the first decision after a (re)start leaves devices as they are or lowers them.

    No pool is commanded above the load its telemetry proves is on: its power for agents and
    PLCs; for an outlet-switched pool, the fewest whole outlets that can carry that power (the
    snapshot has no coil read-back, so more energised outlets cannot be assumed).
    """
    cfg = scenario.site.config
    (rec,) = run(scenario, config=cfg)
    for pool in cfg.pools:
        ps = rec.decision.plan.pools[pool.name]
        target_kw = ps.target_kw
        t = rec.snap.pools.get(pool.name)
        if t is None:
            # Not heard from: it counts at max_kw (CONTRACT 7 Startup), is never raised, and is
            # commanded only when a cap needs it lower.
            assert target_kw <= pool.max_kw + slack(0, target_kw), fail(
                rec, f"{pool.name} at {target_kw!r} kW before any telemetry, above its max_kw"
            )
            assert ps.target_at != rec.now or target_kw < pool.max_kw or target_kw <= 0.0, fail(
                rec, f"{pool.name} commanded to its max_kw before any telemetry"
            )
            continue
        seen_kw = 0.0 if t is None else t.power_kw
        proven_kw = seen_kw
        if pool.driver == "pdu":
            steps = list(itertools.accumulate(outlet_capacity_kw(cfg, pool), initial=0.0))
            proven_kw = next((kw for kw in steps if kw >= seen_kw - EPS_KW), steps[-1])
        assert target_kw <= proven_kw + slack(0, proven_kw), fail(
            rec,
            f"{pool.name} ({pool.driver}): first target {target_kw!r} kW above the "
            f"{proven_kw!r} kW its telemetry ({seen_kw!r} kW) proves is on",
        )


@given(scenarios())
def test_property_site_meter_stale_never_raises(scenario: Scenario) -> None:
    """I3 (and the hold failsafes): with the site meter stale or absent, the dispatch feed
    stale under `hold`, or the decision budget failsafe, no pool target rises."""
    for rec in run(scenario):
        previous = rec.previous_targets()
        if previous is None or not rec.view.never_raise:
            continue
        failsafe = rec.decision.plan.failsafe
        event(f"never raise: {', '.join(rec.view.never_raise)}")
        if "site meter stale" in rec.view.never_raise:
            assert "site_meter_stale" in failsafe, fail(rec, "site meter stale is not reported")
        for name, target_kw in rec.targets().items():
            assert target_kw <= previous[name] + slack(0, target_kw), fail(
                rec,
                f"{name} rose {previous[name]!r} -> {target_kw!r} while {rec.view.never_raise}",
            )
