"""Properties of decide() under ancillary-service awards (CONTRACT 2.2 AWARD, I12).

While an award is active, price alone never takes running mining below the awarded MW; the
limits of I2-I5, the override and I11 still narrow, and then the award says so (`shortfall`).
Checked against the oracle's own floor (the active awards' MW, no more than a reduction
deployment's cap), with every earlier cap invariant holding on the same scenarios.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hypothesis import event, example, given

from controller.core.decide import decide
from controller.core.plan import Decision
from controller.core.policies.award import HOLD_TOLERANCE, MIN_TOLERANCE_KW
from controller.core.site import SiteModel, compile_site
from controller.core.state import PoolState
from controller.model import DispatchType, OverrideRequest
from controller.sim.configs import PoolShape, site_data
from tests.unit.properties.sites import Behaviour, SiteCase
from tests.unit.properties.strategies import (
    AWARD_FOCUS,
    DispatchEvent,
    Meters,
    Misc,
    Scenario,
    StepInput,
    scenarios,
)
from tests.unit.properties.world import EPS_KW, StepRecord, fail, run, slack

RUN = OverrideRequest("run", None, float("inf"), "op", "property", 0.0, "run-nonce")


def _total_kw(decision: Decision) -> float:
    return sum(ps.target_kw for ps in decision.plan.pools.values())


def _commanded_kw(decision: Decision, of: Decision) -> float:
    """`decision`'s targets over the pools `of` can command: a faulted or unreachable pool,
    or one escalated (its PDUs cut), holds no floor (its load does not follow its target)
    and is not kept for one."""
    plan = of.plan.pools
    return sum(
        ps.target_kw
        for name, ps in decision.plan.pools.items()
        if plan[name].state not in ("faulted", "escalated")
    )


def _winding_down_kw(rec: StepRecord) -> float:
    """Load still drawn by pools an earlier decision turned off (ramping down, not yet at their
    target) and this one leaves off: real load on the cap, which is what leaves a pool started
    for the floor room only as it fades (I2). A pool this decision lowers is not counted."""
    total_kw = 0.0
    for name, ps in rec.decision.plan.pools.items():
        before = rec.state.pools.get(name)
        t = rec.snap.pools.get(name)
        if before is None or before.on or ps.on or t is None:
            continue
        if ps.state not in ("faulted", "escalated") and t.power_kw > ps.target_kw:
            total_kw += t.power_kw - ps.target_kw
    return total_kw


def _room_kw(rec: StepRecord) -> float:
    """What the limits other than price leave for mining (the oracle's caps)."""
    return min(cap for _, cap in rec.view.caps)


def _could_hold_kw(rec: StepRecord, name: str, previous: Mapping[str, PoolState]) -> float:
    """What a pool could have kept running: its last target, no more than it draws and than
    its device reports available (an outlet pool's outlets bound it instead)."""
    held_kw = previous[name].target_kw
    t = rec.snap.pools.get(name)
    if t is not None:
        held_kw = min(held_kw, t.power_kw)
        if t.available_kw is not None and previous[name].outlets_on is None:
            held_kw = min(held_kw, t.available_kw)
    return held_kw - EPS_KW  # a pool drawing under a micro-kW runs nothing


def _twin_running_kw(rec: StepRecord, twin: Decision) -> float:
    """What the twin runs over the pools this decision can command: a pool already on counts
    no more than it draws (or this decision gives it): a pool drawing nothing holds no floor,
    whatever its target; a pool the twin starts counts at its target."""
    plan, previous = rec.decision.plan.pools, rec.state.pools
    total_kw = 0.0
    for name, ps in twin.plan.pools.items():
        if plan[name].state in ("faulted", "escalated"):
            continue
        before = previous.get(name)
        t = rec.snap.pools.get(name)
        if before is not None and before.on and t is not None:
            total_kw += min(ps.target_kw, max(t.power_kw, plan[name].target_kw))
        else:
            total_kw += ps.target_kw
    return total_kw


def _outlet_step_kw(site: SiteModel) -> float:
    """The largest single outlet of any outlet-switched pool (0 without one)."""
    steps = [
        b - a
        for spec in site.merit_order(50.0)
        if spec.outlet_steps_kw is not None
        for a, b in zip(spec.outlet_steps_kw, spec.outlet_steps_kw[1:], strict=False)
    ]
    return max(steps, default=0.0)


def _twin_allowed(rec: StepRecord) -> bool:
    """No override in play (the twin's `run` would replace one), and no pool escalated or
    faulted by this very decision: that is judged after allocation, so the floor sees the
    pool cut (and keeps another for it) from the next decision on."""
    failing = ("escalated", "faulted")
    escalating = any(
        ps.state in failing and name in rec.state.pools and rec.state.pools[name].state != ps.state
        for name, ps in rec.decision.plan.pools.items()
    )
    return (
        rec.view.override is None
        and not rec.snap.override_inbox
        and rec.state.override is None
        and not escalating
    )


def _twin(rec: StepRecord, site: SiteModel) -> Decision:
    """This decision with price ignored (override `run`), everything else as it was."""
    return decide(rec.snap, replace(rec.state, override=RUN, memo=None), rec.now, site)


def _barred(rec: StepRecord) -> bool:
    """Raising is barred at this step: a trip, a failsafe that holds, or no fresh price."""
    return (
        bool(rec.view.never_raise)
        or rec.view.ufr_must_trip
        or rec.decision.next_state.trip_active
        or not rec.view.price_fresh
    )


@given(scenarios(prof=AWARD_FOCUS))
def test_property_price_never_lowers_a_pool_below_the_floor(scenario: Scenario) -> None:
    """I12: a pool lowered in price's name, lower than the same inputs with price ignored
    would leave it, leaves at least the floor running (or all that the other limits leave
    room for). The twin tells a price lowering from the cap's merit-order swap, where a pool
    waits for another's lowering to show before it rises (walk.py)."""
    site: SiteModel = compile_site(scenario.site.config)
    for rec in run(scenario):
        if rec.view.floor_kw <= 0.0 or rec.previous is None or not _twin_allowed(rec):
            continue
        event("an award is active")
        previous = rec.previous.plan.pools
        twin_decision = _twin(rec, site)
        twin = twin_decision.plan.pools
        lowered = [
            name
            for name, ps in rec.decision.plan.pools.items()
            if ps.reason == "price"
            and ps.target_kw < _could_hold_kw(rec, name, previous)
            and ps.target_kw < twin[name].target_kw - 1e-9
        ]
        if not lowered:
            continue
        event("price lowered a pool during an award")
        n = len(rec.decision.plan.pools)
        floor_kw = min(rec.view.floor_kw, _room_kw(rec), _commanded_kw(twin_decision, rec.decision))
        total_kw = _commanded_kw(rec.decision, rec.decision)
        assert total_kw >= floor_kw - slack(n, floor_kw) - _outlet_step_kw(site), fail(
            rec, f"{lowered} lowered for 'price' leaving {total_kw!r} < floor {floor_kw!r}"
        )


def _award_while_a_cut_pool_winds_down() -> Scenario:
    """Found by `make fuzz`: islanded, the site is cut to 0; a step later an award arrives
    while c00 still draws 975 kW on its way down and its min_curtail_s keeps price from
    restarting it. Price starts c01 instead, in the room c00's fading load leaves (825 kW):
    the site draws the floor, but the targets alone (825 kW) read as a shortfall against a
    twin that restarts c00."""
    pools = tuple(PoolShape(f"c0{i}", "mqtt", 3000.0, 21.5, 0.0, False, 24, 3.5) for i in (0, 1))
    sections = {
        "economics": {"hashprice_usd_per_ph_day": 50.0, "pool_fee": 0.02,
                      "hysteresis_usd_per_mwh": 5.0, "min_run_s": 0.0, "min_curtail_s": 5.0},
        "control": {"tick_s": 1.0, "ramp_up_kw_per_s": 2000.0, "confirm_timeout_s": 5.0},
        "feeds": {"price_stale_s": 1200.0, "on_price_stale": "hold",
                  "dispatch_heartbeat_s": 0.0, "on_dispatch_stale": "curtail"},
        "dispatch": {"frequency_reset_s": 600.0, "eea1_fraction": 1.0, "eea2_fraction": 0.0,
                     "eea3_fraction": 0.0, "frequency_trip_hz": 59.7,
                     "frequency_reset_hz": 59.9},
    }  # fmt: skip
    data = site_data(pools, (), poi_limit_kw=2200.0, backup_limit_kw=0.0, aux_kw=300.0,
                     margin_kw=100.0, site_meter=True, sections=sections)  # fmt: skip
    behaviours = (Behaviour(1.0, 0.5, False, 1.0), Behaviour(0.0, 1.0, False, 1.0))
    misc = Misc(price_received_late=False, hashprice=None, budget_failsafe=False)

    def step(islanded: bool = False, price: float | None = None,
             dispatch: DispatchEvent | None = None) -> StepInput:  # fmt: skip
        meters = Meters("fresh", "fresh", 1.0, 0.0, islanded)
        return StepInput(1.0, price, meters, "nominal", misc, None, dispatch, None)

    award = DispatchEvent("AWARD", "D1", 0.3, 0, None, None, 0.0, "D1")
    steps = (step(), step(), step(), step(islanded=True), step(price=40.0, dispatch=award))
    return Scenario(SiteCase(pools, behaviours, (), data, True), steps, False)


@given(scenarios(prof=AWARD_FOCUS))
@example(_award_while_a_cut_pool_winds_down())
def test_property_price_keeps_what_run_would_up_to_the_floor(scenario: Scenario) -> None:
    """I12 against a twin decision: the same inputs with price ignored (override `run`) run no
    more than the floor above this decision, whatever the price (fresh price, no override, no
    trip, nothing barring raises: there the twin could raise what the award may not)."""
    site: SiteModel = compile_site(scenario.site.config)
    for rec in run(scenario):
        if rec.view.floor_kw <= 0.0 or _barred(rec) or not _twin_allowed(rec):
            continue
        event("an award with a fresh price")
        twin = _twin(rec, site)
        n = len(rec.decision.plan.pools)
        wanted_kw = min(rec.view.floor_kw, _twin_running_kw(rec, twin))
        total_kw = _commanded_kw(rec.decision, rec.decision) + _winding_down_kw(rec)
        # Whole outlets: a ramp step rounded down to them leaves a remainder the twin hands
        # to its next pool, which the award did not need to keep.
        assert total_kw >= wanted_kw - slack(n, wanted_kw) - _outlet_step_kw(site), fail(
            rec,
            f"mining target {total_kw!r} < min(floor {rec.view.floor_kw!r}, "
            f"price ignored {_twin_running_kw(rec, twin)!r})",
        )


@given(scenarios(prof=AWARD_FOCUS))
def test_property_no_pool_rises_for_an_award_while_raises_are_barred(scenario: Scenario) -> None:
    """A trip, a stale price or a hold failsafe: an award keeps what runs, it never adds load."""
    for rec in run(scenario):
        if rec.previous is None or not _barred(rec) or not rec.view.award_ids:
            continue
        event("an award while raises are barred")
        previous = rec.previous.plan.pools
        for name, ps in rec.decision.plan.pools.items():
            if ps.reason.startswith("dispatch:") and ps.reason[9:] in rec.view.award_ids:
                assert ps.target_kw <= previous[name].target_kw + 1e-9, fail(
                    rec, f"{name} raised for an award while raises are barred"
                )


@given(scenarios(prof=AWARD_FOCUS))
def test_property_award_status_tells_the_measured_truth(scenario: Scenario) -> None:
    """An active award is `complied` only while measured mining holds the floor (within 2%),
    `shortfall` only while it does not; both are listed with the floor they hold."""
    for rec in run(scenario):
        awards = [
            o
            for o in rec.decision.next_state.obligations
            if o.instruction.type is DispatchType.AWARD and o.id in rec.view.award_ids
        ]
        if not awards:
            continue
        measured_kw = sum(
            rec.snap.pools[p.name].power_kw
            for p in scenario.site.config.pools
            if p.name in rec.snap.pools
        )
        floor_kw = rec.view.floor_kw
        tolerance_kw = max(MIN_TOLERANCE_KW, HOLD_TOLERANCE * floor_kw) + 1e-6
        listed_kw = sum(o.floor_kw for o in awards)
        assert abs(listed_kw - floor_kw) <= slack(len(awards), floor_kw), fail(
            rec, f"awards list {listed_kw!r} kW of floor, the oracle {floor_kw!r}"
        )
        for o in awards:
            event(f"award status {o.status}")
            if o.status == "complied":
                assert measured_kw >= floor_kw - tolerance_kw, fail(
                    rec, f"{o.id} complied with {measured_kw!r} kW measured < {floor_kw!r}"
                )
            if o.status == "shortfall":
                assert measured_kw < floor_kw - tolerance_kw + 2e-6, fail(
                    rec, f"{o.id} in shortfall with {measured_kw!r} kW measured >= {floor_kw!r}"
                )


@given(scenarios(prof=AWARD_FOCUS))
def test_property_awards_never_lift_a_cap(scenario: Scenario) -> None:
    """I2, I4, I5 with awards: the targets fit under the cap, the cap under every limit (a
    stale price's included: it curtails to the floor), and no reduction is undone."""
    for rec in run(scenario):
        plan = rec.decision.plan
        n = len(plan.pools)
        total_kw = _total_kw(rec.decision)
        assert total_kw <= plan.mining_cap_kw + slack(n, plan.mining_cap_kw), fail(
            rec, f"targets {total_kw!r} > cap {plan.mining_cap_kw!r}"
        )
        for origin, cap_kw in (*rec.view.caps, *rec.view.reductions):
            assert total_kw <= cap_kw + slack(n, cap_kw), fail(
                rec, f"targets {total_kw!r} above the {origin} cap {cap_kw!r}"
            )
        if rec.view.ufr_must_trip:
            for p in scenario.site.config.pools:
                if p.ufr:
                    assert plan.pools[p.name].target_kw == 0.0, fail(rec, f"{p.name} not cut")
