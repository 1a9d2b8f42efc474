"""Properties of the decide() pipeline (DESIGN point 2): every stage only narrows the cap.

Each step of a random scenario gives the stages their real inputs (the snapshot, the state,
the site, what the earlier stages computed); each stage is then also handed a random incoming
cap, from 0 to unbounded, in place of the one the previous stage left. Whatever the cap and the
inputs, a stage returns a cap no larger; when it narrows it, the new cap is what it names as
its own and it says so in a Reason, and when it does not, the cap comes back as it was given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from controller.core import seed
from controller.core.policies import UNBOUNDED, Cap, dispatch, envelope, frequency, override, price
from controller.core.site import compile_site
from controller.core.totals import pool_totals
from tests.unit.properties.strategies import Scenario, scenarios
from tests.unit.properties.world import StepRecord, fail, run

BINDINGS = ("safety", "dispatch:D1", "eea", "4cp", "override", "price")
STAGES = ("safety", "dispatch", "override", "frequency", "price", "failsafe")


@st.composite
def caps(draw: st.DrawFn) -> Cap:
    """0, unbounded, tiny, round and arbitrary kW: below, at and above every stage's own cap."""
    kw = draw(
        st.one_of(
            st.sampled_from((0.0, math.inf, 1e-9, 500.0, 3000.0, 12000.0, 1e7)),
            st.floats(min_value=0.0, max_value=1e8, allow_nan=False),
        )
    )
    return Cap(kw, draw(st.sampled_from(BINDINGS)))


def stage_runs(
    rec: StepRecord, scenario: Scenario, given_cap: Cap | None = None
) -> Iterator[tuple[str, Any]]:
    """Every stage on this step's inputs, in pipeline order. With `given_cap`, each stage gets
    it as its incoming cap; without, they run chained from UNBOUNDED, as decide() runs them."""
    site = compile_site(scenario.site.config)
    config, snap, state, now = site.config, rec.snap, rec.state, rec.now
    pools = seed.pools_for(site, state, snap)
    totals = pool_totals(site, pools, snap, state.started_at, now)

    def incoming(previous: Cap) -> Cap:
        return previous if given_cap is None else given_cap

    safe = envelope.stage(incoming(UNBOUNDED), site, snap, totals, state.aux_estimate_kw, now)
    yield "envelope", safe
    inbox, env = snap.dispatch_inbox, safe.envelope
    seen_kw = totals.mining_kw - totals.unreported_kw
    mining_kw = totals.mining_kw
    obliged = dispatch.stage(incoming(safe.cap), state, inbox, config, env, mining_kw, now, seen_kw)
    yield "dispatch", obliged
    overridden = override.stage(incoming(obliged.cap), state.override, snap.override_inbox, now)
    yield "override", overridden
    freq = frequency.stage(incoming(overridden.cap), state, snap.frequency_hz, config, now)
    yield "frequency", freq
    current, floor_kw = overridden.current, obliged.floor.kw
    yield (
        "price",
        price.stage(
            incoming(freq.cap), snap.price, state.started_at, current, config.feeds, floor_kw, now
        ),
    )


@given(scenarios(max_steps=15), st.lists(caps(), min_size=1, max_size=15))
def test_property_every_stage_only_narrows(scenario: Scenario, incoming: list[Cap]) -> None:
    narrowed: set[str] = set()
    for k, rec in enumerate(run(scenario)):
        given_cap = incoming[k % len(incoming)]
        for name, out in stage_runs(rec, scenario, given_cap):
            cap = out.cap
            where = f"{name} stage given {given_cap!r} returned {cap!r}"
            assert cap.kw <= given_cap.kw, fail(rec, f"{where}: it widened the cap")
            assert all(r.stage in STAGES for r in out.reasons), fail(rec, f"{where}: reasons")
            if cap == given_cap:
                continue
            narrowed.add(name)
            assert cap.kw < given_cap.kw, fail(rec, f"{where}: a new cap that is not lower")
            assert any(r.cap_kw == cap.kw for r in out.reasons), fail(
                rec, f"{where}: narrowed without a reason for it ({out.reasons!r})"
            )
    for name in sorted(narrowed):
        event(f"{name} narrowed")


@given(scenarios(max_steps=15))
def test_property_the_pipeline_from_unbounded_gives_the_plan_cap(scenario: Scenario) -> None:
    """Run in order from UNBOUNDED, the stages give the decision's cap, and its reasons are
    the stages' reasons in pipeline order."""
    for rec in run(scenario):
        outs = dict(stage_runs(rec, scenario))
        plan = rec.decision.plan
        assert outs["price"].cap.kw == plan.mining_cap_kw, fail(rec, "pipeline cap != plan cap")
        reasons = tuple(r for out in outs.values() for r in out.reasons)
        assert reasons == rec.decision.reasons, fail(rec, f"reasons {rec.decision.reasons!r}")


def test_cap_narrow_never_widens() -> None:
    cap = Cap(100.0, "safety")
    assert cap.narrow(None, "override") is cap
    assert cap.narrow(100.0, "override") is cap  # equal: the earlier binding stays
    assert cap.narrow(150.0, "override") is cap
    assert cap.narrow(math.nan, "override") is cap
    assert cap.narrow(40.0, "override") == Cap(40.0, "override")
    assert UNBOUNDED.narrow(0.0, "safety") == Cap(0.0, "safety")
