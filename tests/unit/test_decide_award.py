"""Table tests for ancillary-service awards (CONTRACT 2.2 AWARD, I12).

The harness site runs 18 MW on three 6 MW pools: `eff` (17 J/TH), `mid` (22 J/TH, the only
`ufr` pool) and `old` (30 J/TH, no PDU path). At $5000/MWh price curtails all three.
"""

from __future__ import annotations

import pytest

from controller.core.plan import Decision
from tests.unit.harness import SiteSim, make_config

SPIKE = 5000.0


def running_site(**sections: object) -> SiteSim:
    sim = SiteSim(make_config(**sections))
    sim.run(20)
    assert sim.mining_kw == 18000
    return sim


def award(sim: SiteSim, product: str, mw: float, msg_id: str = "AW1", **fields: object) -> None:
    window = {"start": sim.now, "end": sim.now + 3600.0}
    window.update(fields)  # type: ignore[arg-type]
    sim.dispatch("AWARD", msg_id, mw=mw, product=product, **window)


def acks_of(sim: SiteSim, msg_id: str) -> list[str]:
    return [status for ack_id, status in sim.acks if ack_id == msg_id]


def test_rrs_award_holds_its_mw_through_a_price_spike_on_the_ufr_pool() -> None:
    sim = running_site()
    award(sim, "RRS", 4.0)
    sim.price = SPIKE
    decision = sim.run(5)
    targets = sim.targets()
    # The floor runs on `mid`, the ufr pool, at part load; the others curtail on price.
    assert targets == {"eff": 0.0, "mid": pytest.approx(4000.0), "old": 0.0}
    assert decision.plan.pools["mid"].reason == "dispatch:AW1"
    assert decision.plan.pools["eff"].reason == "price"
    assert sim.mining_kw == pytest.approx(4000.0)
    assert acks_of(sim, "AW1") == ["accepted", "complied"]
    assert any("award AW1 (RRS 4 MW)" in r.detail for r in decision.reasons)
    (listed,) = decision.next_state.obligations
    assert listed.floor_kw == pytest.approx(4000.0)
    assert listed.status == "complied"


def test_ecrs_award_keeps_the_most_efficient_pool() -> None:
    sim = running_site()
    award(sim, "ECRS", 4.0)
    sim.price = SPIKE
    sim.run(5)
    assert sim.targets() == {"eff": pytest.approx(4000.0), "mid": 0.0, "old": 0.0}


def test_no_award_price_curtails_everything() -> None:
    """The control case: the same spike without an award takes the site to 0."""
    sim = running_site()
    sim.price = SPIKE
    sim.run(5)
    assert sim.mining_kw == 0.0


def test_award_brings_load_back_at_once_ignoring_band_and_dwell() -> None:
    """An award starting while price has everything off: the floor comes on at the ramp, not
    after min_curtail_s, and is not a shortfall within its ramp time."""
    sim = running_site(
        economics={"min_curtail_s": 3600},
        control={"ramp_up_kw_per_s": 1000, "confirm_timeout_s": 5},
    )
    sim.price = SPIKE
    sim.run(5)
    assert sim.mining_kw == 0.0
    award(sim, "ECRS", 4.0)
    sim.step()
    assert sim.targets()["eff"] == pytest.approx(1000.0)  # one ramp step
    sim.run(5)
    assert sim.mining_kw == pytest.approx(4000.0)
    assert acks_of(sim, "AW1") == ["accepted", "complied"]


def test_a_limit_that_cuts_into_an_award_is_a_shortfall_then_complied_once_lifted() -> None:
    sim = running_site()
    award(sim, "RRS", 4.0)
    sim.price = SPIKE
    sim.run(5)
    # Site import 12 MW less the margin (0.5), the GPU reservation (firm 10) and aux (1).
    sim.dispatch("LIMIT", "L1", mw=12.0)
    decision = sim.run(3)
    assert decision.plan.mining_cap_kw == pytest.approx(500.0)
    assert sim.mining_kw == pytest.approx(500.0)
    (short,) = [a for a in sim.ack_log if a.id == "AW1" and a.status == "shortfall"]
    assert short.reason == "missing 3500.0 kW"
    assert short.target_kw == pytest.approx(4000.0)
    assert short.measured_kw == pytest.approx(500.0)
    assert decision.shortfall_kw == pytest.approx(3500.0)
    sim.dispatch("RECALL", "L1-recall", recall_id="L1")
    decision = sim.run(3)
    assert sim.mining_kw == pytest.approx(4000.0)  # restored at once: the band does not apply
    assert acks_of(sim, "AW1") == ["accepted", "complied", "shortfall", "complied"]
    assert decision.shortfall_kw == 0.0


def test_a_deployment_during_an_award_reduces_as_i5_and_is_no_shortfall() -> None:
    sim = running_site()
    award(sim, "ECRS", 4.0)
    sim.run(2)
    sim.dispatch("ECRS", "DEP", mw=16.0)
    decision = sim.run(3)
    assert decision.plan.mining_cap_kw == pytest.approx(2000.0)
    assert sim.mining_kw <= 2000.0 + 1e-6
    assert "shortfall" not in acks_of(sim, "AW1")
    listed = {o.id: o for o in decision.next_state.obligations}
    assert listed["AW1"].floor_kw == pytest.approx(2000.0)  # what is owed under the cap
    assert listed["AW1"].status == "complied"


def test_stale_price_with_curtail_keeps_the_floor_of_what_runs_and_raises_nothing() -> None:
    sim = running_site(feeds={"price_stale_s": 10, "on_price_stale": "curtail"})
    award(sim, "ECRS", 4.0)
    sim.price_at = sim.now  # no new record from now on
    decision = sim.run(15)
    assert "price_stale" in decision.plan.failsafe
    assert decision.plan.mining_cap_kw == pytest.approx(4000.0)
    assert sim.mining_kw == pytest.approx(4000.0)
    assert sim.targets()["eff"] == pytest.approx(4000.0)


def test_stale_price_does_not_start_a_pool_for_an_award() -> None:
    sim = running_site(feeds={"price_stale_s": 10, "on_price_stale": "hold"})
    sim.price = SPIKE
    sim.run(3)
    assert sim.mining_kw == 0.0
    sim.price_at = sim.now
    sim.run(15)
    award(sim, "ECRS", 4.0)
    decision = sim.run(7)  # past the grace: confirm_timeout_s + floor / ramp
    assert "price_stale" in decision.plan.failsafe
    assert sim.mining_kw == 0.0  # nothing justifies more load without a price
    assert "shortfall" in acks_of(sim, "AW1")


def test_frequency_trip_during_an_rrs_award_adds_no_load_and_is_reported() -> None:
    sim = running_site()
    award(sim, "RRS", 4.0)
    sim.price = SPIKE
    sim.run(5)
    assert sim.targets()["mid"] == pytest.approx(4000.0)
    sim.frequency_hz = 59.5
    decision = sim.run(3)
    assert decision.plan.pools["mid"].state == "tripped"
    assert sim.targets() == {"eff": 0.0, "mid": 0.0, "old": 0.0}  # nothing makes it up
    assert "shortfall" in acks_of(sim, "AW1")


def test_award_before_its_start_holds_nothing_and_after_its_end_price_rules_again() -> None:
    sim = running_site()
    award(sim, "ECRS", 4.0, start=sim.now + 10, end=sim.now + 20)
    sim.price = SPIKE
    decision = sim.run(5)
    assert sim.mining_kw == 0.0
    (pending,) = decision.next_state.obligations
    assert (pending.status, pending.floor_kw) == ("accepted", 0.0)
    sim.run(8)
    assert sim.mining_kw == pytest.approx(4000.0)
    decision = sim.run(10)
    assert decision.next_state.obligations == ()
    assert sim.mining_kw == 0.0


def test_a_resent_award_is_answered_with_its_status_and_a_recall_ends_it() -> None:
    sim = running_site()
    award(sim, "RRS", 4.0)
    sim.price = SPIKE
    sim.run(3)
    award(sim, "RRS", 4.0)
    decision: Decision = sim.step()
    (resend,) = [a for a in decision.acks if a.id == "AW1"]
    assert (resend.status, resend.reason) == ("complied", "resend")
    assert resend.target_kw == pytest.approx(4000.0)
    sim.dispatch("RECALL", "R", recall_id="AW1")
    sim.run(3)
    assert sim.mining_kw == 0.0


def test_two_awards_share_one_floor() -> None:
    sim = running_site()
    award(sim, "RRS", 4.0, "AW1")
    award(sim, "ECRS", 3.0, "AW2")
    sim.price = SPIKE
    decision = sim.run(5)
    # RRS on the ufr pool first (4 MW of mid), the ECRS part in merit order (3 MW of eff).
    assert sim.targets() == {"eff": pytest.approx(3000.0), "mid": pytest.approx(4000.0), "old": 0}
    floors = {o.id: o.floor_kw for o in decision.next_state.obligations}
    assert floors == {"AW1": pytest.approx(4000.0), "AW2": pytest.approx(3000.0)}


def test_a_pool_kept_for_rrs_also_carries_the_rest_of_the_floor_in_merit_order() -> None:
    """Found by the award property: the ufr pool kept for the RRS part was skipped when the rest
    of the floor went round in merit order. Here the allowances came to 16 MW for a 17 MW floor,
    so every pool was held on as it ran (18 MW through a $5000 spike); on a one-pool site the
    floor ran short."""
    sim = running_site()
    award(sim, "RRS", 4.0, "AW1")
    award(sim, "ECRS", 13.0, "AW2")
    sim.price = SPIKE
    sim.run(5)
    # RRS: 4 MW of mid; the other 13 MW in merit order: eff whole, mid topped up, old the rest.
    assert sim.targets() == {
        "eff": pytest.approx(6000.0),
        "mid": pytest.approx(6000.0),
        "old": pytest.approx(5000.0),
    }
    assert acks_of(sim, "AW1") == ["accepted", "complied"]


def test_swapping_to_the_ufr_pool_never_dips_below_the_floor() -> None:
    """RRS on a site where only `eff` runs: `mid` (ufr) must come on, and `eff` is held as it
    is until mid's measured load covers the floor."""
    sim = running_site(control={"ramp_up_kw_per_s": 1000, "confirm_timeout_s": 5})
    sim.price = 110.0  # over mid's and old's breakevens, under eff's
    sim.run(5)
    assert sim.targets()["mid"] == 0.0 and sim.targets()["eff"] == 6000.0
    award(sim, "RRS", 4.0)
    sim.price = SPIKE
    for _ in range(12):
        decision = sim.step()
        assert decision.plan.mining_target_kw >= 4000.0 - 1e-6
        assert sim.mining_kw >= 4000.0 - 1e-6
    assert sim.targets() == {"eff": 0.0, "mid": pytest.approx(4000.0), "old": 0.0}


def test_the_floor_is_not_counted_on_a_cut_the_cap_cannot_lift() -> None:
    """Found by the award property: `mid` was escalated to a PDU cut, which lifts only with room
    for its whole 6 MW. Under an 11 MW cap with `eff` at 6 MW that room is not there, so `mid`
    stays cut, and the floor's 4 MW must be kept on `old` from the award's first decision (it
    was counted on `mid` there, one second short of the floor)."""
    sim = running_site()
    sim.stuck.add("mid")
    sim.stuck_power_kw["mid"] = 6000.0
    sim.price = SPIKE
    sim.run(7)
    assert sim.last is not None and sim.last.plan.pools["mid"].cut
    sim.stuck.clear()
    sim.dispatch("CLR", "C1", mw=11.0)
    award(sim, "ECRS", 10.0)
    for _ in range(3):
        pools = sim.step().plan.pools
        assert (pools["mid"].cut, pools["mid"].target_kw) == (True, 0.0)
        assert pools["eff"].target_kw == 6000.0
        assert pools["old"].target_kw == pytest.approx(4000.0)
        assert pools["old"].reason == "dispatch:AW1"
    assert sim.mining_kw == pytest.approx(10000.0)
