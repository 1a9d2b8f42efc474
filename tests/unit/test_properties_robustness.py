"""Properties of decide(): a deterministic total function, across config reloads too.

Scenarios and the oracle are in `tests.unit.properties`.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from controller.core.decide import decide
from controller.core.site import compile_site
from controller.sim.configs import PoolShape, build_config, site_data
from tests.unit.properties.strategies import Scenario, scenarios
from tests.unit.properties.world import fail, run, slack

# ---------------------------------------------------------------------------------------------
# Determinism and robustness


@given(scenarios())
def test_property_decide_is_deterministic_and_never_raises(scenario: Scenario) -> None:
    """decide() is a total function: any valid input sequence gives a finite, complete decision
    (I10 in the core; run() turns an exception into a failure naming the step), and equal
    inputs, with an equal config object, give an equal Decision."""
    twin = compile_site(build_config(scenario.site.data))  # an equal config, another object
    trace = run(scenario)
    assert len(trace) == len(scenario.steps)
    for rec in trace:
        plan = rec.decision.plan
        assert plan.at == rec.now, fail(rec, "plan time")
        assert math.isfinite(plan.mining_cap_kw) and plan.mining_cap_kw >= 0.0, fail(rec, "cap")
        assert all(math.isfinite(ps.target_kw) for ps in plan.pools.values()), fail(rec, "nan")
        assert rec.decision.next_state.last_decision_at == rec.now, fail(rec, "decision time")
        again = decide(rec.snap, rec.state, rec.now, twin)
        assert again == rec.decision, fail(rec, f"decide() differs on equal inputs: {again!r}")


@given(
    scenarios(max_pools=8, max_steps=12),
    st.integers(0, 4),
    st.sampled_from(("rename", "drop", "add")),
)
def test_property_decide_survives_config_reload(
    scenario: Scenario, at_step: int, change: str
) -> None:
    """SIGHUP reload: the state of the old config meets the new config (CONTRACT 5)."""
    pools = list(scenario.site.pools)
    if change == "rename":
        pools[-1] = replace(pools[-1], name="renamed")
    elif change == "drop" and len(pools) > 1:
        pools.pop()
    else:
        pools.append(PoolShape("added", driver="mqtt", max_kw=100.0, outlets=0))
    data = dict(scenario.site.data)
    new = site_data(
        pools,
        scenario.site.tenants,
        poi_limit_kw=data["site"]["poi_limit_kw"] + 100.0,
        backup_limit_kw=data["site"]["backup_limit_kw"],
        aux_kw=data["site"]["aux_kw"],
        margin_kw=data["site"]["margin_kw"],
        site_meter=scenario.site.site_meter,
        sections={k: data[k] for k in ("economics", "control", "feeds", "dispatch")},
    )
    new_cfg = build_config(new)
    trace = run(scenario, reload=lambda k: new_cfg if k == at_step else None)
    for rec in trace[at_step:]:
        plan = rec.decision.plan
        assert set(plan.pools) == {p.name for p in pools}, fail(rec, "plan after reload")
        total_kw = sum(rec.targets().values())
        assert total_kw <= plan.mining_cap_kw + slack(len(pools), plan.mining_cap_kw), fail(
            rec, "cap exceeded after reload"
        )
