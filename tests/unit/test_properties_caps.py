"""Properties of decide(): the mining cap and what sits under it (I1, I2, I3, I4).

The targets fit under the cap and the cap under every limit; the GPU reservation and the
envelope count each load once; a plan names configured pools only, in whole outlets; an
override only ever narrows. Scenarios and the oracle are in `tests.unit.properties`.
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import event, given

from controller.core.decide import decide
from controller.core.site import compile_site
from tests.unit.factories import outlet_capacity_kw, protected_pdu_names
from tests.unit.properties.strategies import Scenario, scenarios
from tests.unit.properties.world import fail, run, slack

# ---------------------------------------------------------------------------------------------
# I2, I4: the cap and the targets under it


@given(scenarios())
def test_property_cap_never_exceeded(scenario: Scenario) -> None:
    """I2, I4: the pool targets fit under the mining cap, and the cap under every limit: the
    safety envelope (POI or backup), each active dispatch cap, EEA, the override, failsafes."""
    for rec in run(scenario):
        plan = rec.decision.plan
        n = len(plan.pools)
        total_kw = sum(rec.targets().values())
        assert total_kw <= plan.mining_cap_kw + slack(n, plan.mining_cap_kw), fail(
            rec, f"sum of pool targets {total_kw!r} > mining cap {plan.mining_cap_kw!r}"
        )
        assert abs(plan.mining_target_kw - total_kw) <= slack(n, total_kw), fail(
            rec, f"plan.mining_target_kw {plan.mining_target_kw!r} != sum of targets {total_kw!r}"
        )
        for origin, cap_kw in rec.view.caps:
            assert plan.mining_cap_kw <= cap_kw + slack(n, cap_kw), fail(
                rec, f"mining cap {plan.mining_cap_kw!r} above the {origin} cap {cap_kw!r}"
            )
        envelope_kw = rec.view.caps[0][1]
        assert plan.envelope_kw <= envelope_kw + slack(n, envelope_kw), fail(
            rec, f"envelope {plan.envelope_kw!r} above limit - GPU - aux - margin {envelope_kw!r}"
        )
        assert plan.mining_cap_kw <= plan.envelope_kw + slack(n, plan.envelope_kw), fail(
            rec, "mining cap above the safety envelope"
        )
        if rec.view.eea_fraction is not None:
            eea_cap = rec.view.eea_fraction * plan.envelope_kw
            assert plan.mining_cap_kw <= eea_cap + slack(n, eea_cap), fail(
                rec, f"mining cap above the EEA cap {eea_cap!r}"
            )
        for name, target_kw in rec.targets().items():
            assert target_kw >= 0.0, fail(rec, f"{name}: negative target {target_kw!r}")
        event(f"binding {plan.binding.split(':')[0]}")


@given(scenarios())
def test_property_gpu_reservation_and_envelope_count_each_load_once(scenario: Scenario) -> None:
    """I3: GPU reservation = sum over tenants of max(firm_kw, measured), stale readings counted.
    I2: envelope = limit - GPU reservation - aux - margin.

    The core may find more aux than configured (closed loop on the site meter), but only load
    that is really unexplained: a tenant's draw is already inside its reservation and must not
    be subtracted again. That is checked in steady state (no pool in transition) with every
    meter fresh and every pool reporting, where the world's true aux is known.
    """
    cfg = scenario.site.config
    firm_kw = sum(t.firm_kw for t in cfg.gpu_tenants)
    timeout_s = cfg.control.confirm_timeout_s
    for rec in run(scenario, config=cfg):
        plan = rec.decision.plan
        assert plan.gpu_reserved_kw >= firm_kw - slack(0, firm_kw), fail(
            rec, f"GPU reservation {plan.gpu_reserved_kw!r} < sum of firm_kw {firm_kw!r}"
        )
        for tenant, measured_kw in rec.view.gpu_measured_kw.items():
            assert plan.gpu_reserved_kw >= measured_kw - slack(0, measured_kw), fail(
                rec, f"GPU reservation below tenant {tenant}'s measured {measured_kw!r}"
            )
        reserved_kw = rec.view.gpu_reserved_kw
        assert math.isclose(plan.gpu_reserved_kw, reserved_kw, rel_tol=1e-9, abs_tol=1e-6), fail(
            rec,
            f"GPU reservation {plan.gpu_reserved_kw!r} != sum max(firm, measured) {reserved_kw!r}",
        )
        if not scenario.site.site_meter:
            continue
        m = scenario.steps[rec.index].meters
        settled = all(
            ps.confirmed or rec.now - ps.target_at >= timeout_s for ps in rec.state.pools.values()
        )
        complete = all(p.name in rec.snap.pools for p in cfg.pools)
        if not (settled and complete and m.site == "fresh" and m.gpu == "fresh"):
            continue
        # What the site draws beyond mining and the reservations: aux, plus any tenant load
        # above its reservation (a tenant without meters is reserved at firm_kw).
        unreserved_kw = sum(
            max(0.0, t.firm_kw * m.gpu_factor - t.firm_kw) for t in cfg.gpu_tenants if not t.meters
        )
        aux_kw = max(cfg.site.aux_kw, cfg.site.aux_kw + m.extra_aux_kw + unreserved_kw)
        expected = rec.view.limit_kw - rec.view.gpu_reserved_kw - aux_kw - cfg.site.margin_kw
        expected = max(0.0, expected)
        assert plan.envelope_kw >= expected - slack(len(plan.pools), expected), fail(
            rec,
            f"envelope {plan.envelope_kw!r} < limit {rec.view.limit_kw!r} - reserved "
            f"{rec.view.gpu_reserved_kw!r} - aux {aux_kw!r} - margin {cfg.site.margin_kw!r} "
            f"= {expected!r} (tenants without meters: "
            f"{[t.name for t in cfg.gpu_tenants if not t.meters]})",
        )


# ---------------------------------------------------------------------------------------------
# I1 at the core level


@given(scenarios())
def test_property_plan_names_only_configured_pools(scenario: Scenario) -> None:
    """I1 in the core: a plan names configured pools only (never a protected PDU, a meter or
    a stray telemetry name), and outlet pools get whole outlets within their PDUs."""
    cfg = scenario.site.config
    configured = {p.name for p in cfg.pools}
    protected = protected_pdu_names(cfg)
    steps = {p.name: outlet_capacity_kw(cfg, p) for p in cfg.pools if p.driver == "pdu"}
    for rec in run(scenario):
        plan = rec.decision.plan
        assert set(plan.pools) == configured, fail(rec, f"plan names {sorted(plan.pools)}")
        assert set(rec.decision.next_state.pools) == configured, fail(rec, "state names")
        assert not protected & set(plan.pools), fail(rec, "plan names a protected PDU")
        for pool in cfg.pools:
            ps = plan.pools[pool.name]
            if pool.name not in steps:
                assert ps.outlets_on is None, fail(rec, f"{pool.name}: outlets on a non-pdu pool")
                continue
            outlets = steps[pool.name]
            if ps.outlets_on is None:
                # Unknown outlets are legal only until decide() first commands the pool (I6:
                # a restart leaves running outlets as they are).
                assert ps.target_at == -math.inf, fail(rec, f"{pool.name}: no outlet count")
                continue
            assert 0 <= ps.outlets_on <= len(outlets), fail(rec, f"{pool.name}: outlet count")
            if not ps.cut:
                step_kw = sum(outlets[: ps.outlets_on])
                assert abs(step_kw - ps.target_kw) <= slack(len(outlets), step_kw), fail(
                    rec, f"{pool.name}: target {ps.target_kw!r} is not whole outlets {step_kw!r}"
                )
            assert ps.target_kw <= pool.max_kw + slack(len(outlets), pool.max_kw), fail(
                rec, f"{pool.name}: target above max_kw"
            )


# ---------------------------------------------------------------------------------------------
# I4: overrides never widen


@given(scenarios())
def test_property_override_never_raises_above_cap_without_it(scenario: Scenario) -> None:
    """I4: an override lowers the cap or picks `run` below it, never more."""
    cfg = scenario.site.config
    site = compile_site(cfg)
    for rec in run(scenario, config=cfg):
        if rec.view.override is None:
            continue
        # The same decision with the override withdrawn: its cap is the ceiling for the override.
        snap = replace(rec.snap, override_inbox=())
        state = replace(rec.state, override=None)
        without = decide(snap, state, rec.now, site).plan
        plan = rec.decision.plan
        n = len(plan.pools)
        total_kw = sum(rec.targets().values())
        mode = rec.view.override.mode
        event(f"override {mode} active")
        assert plan.mining_cap_kw <= without.mining_cap_kw + slack(n, without.mining_cap_kw), fail(
            rec, f"override {mode} raised the cap above {without.mining_cap_kw!r}"
        )
        assert total_kw <= without.mining_cap_kw + slack(n, without.mining_cap_kw), fail(
            rec, f"override {mode}: targets {total_kw!r} above the cap without it"
        )
        if mode == "curtail":
            assert total_kw == 0.0, fail(rec, "override curtail left mining load")
        if mode == "limit":
            limit_kw = rec.view.override.limit_kw or 0.0
            assert total_kw <= limit_kw + slack(n, limit_kw), fail(rec, "override limit exceeded")
