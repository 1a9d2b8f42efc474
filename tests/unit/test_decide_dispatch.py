"""Table tests for every dispatch type and its lifecycle (CONTRACT 2.2, I4, I5)."""

from __future__ import annotations

import pytest

from tests.unit.harness import SiteSim, make_config

REDUCTIONS = ["RRS", "ECRS", "NSRS", "ERS10", "ERS30"]


def running_site(**sections: object) -> SiteSim:
    sim = SiteSim(make_config(**sections))
    sim.run(5)
    assert sim.mining_kw == 18000
    return sim


@pytest.mark.parametrize("kind", REDUCTIONS)
def test_reduction_caps_mining_at_level_minus_mw_even_when_price_falls(kind: str) -> None:
    sim = running_site()
    sim.dispatch(kind, "VDI-1", mw=5.0, deadline_s=600)
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(13000)
    assert decision.plan.binding == "dispatch:VDI-1"
    assert ("VDI-1", "accepted") in sim.acks
    sim.price = -30.0  # I5: cheap power does not lift a deployment
    for _ in range(20):
        decision = sim.step()
        assert decision.plan.mining_target_kw <= 13000 + 1e-6
    assert ("VDI-1", "complied") in sim.acks
    assert sim.targets()["old"] == 1000  # least efficient takes the cut


def test_reduction_larger_than_running_load_reports_shortfall_with_missing_kw() -> None:
    sim = running_site()
    sim.dispatch("ECRS", "VDI-2", mw=20.0)
    decision = sim.step()
    assert decision.plan.mining_cap_kw == 0
    shortfalls = [a for a in decision.acks if a.status == "shortfall"]
    assert shortfalls
    assert shortfalls[0].reason == "missing 2000.0 kW"
    # What the shortfall metric shows: above the cap now (18 MW still run), or what can never
    # be shed (2 MW more than ran at receipt), the larger.
    assert decision.shortfall_kw == 18000.0
    decision = sim.run(5)
    assert ("VDI-2", "complied") not in sim.acks
    assert decision.shortfall_kw == 2000.0


def test_recall_ends_a_deployment_and_pools_return_through_the_band() -> None:
    sim = running_site()
    sim.dispatch("RRS", "R1", mw=6.0)
    sim.run(3)
    assert sim.mining_kw == pytest.approx(12000)
    sim.dispatch("RECALL", "R1-recall", recall_id="R1")
    decision = sim.step()
    assert ("R1-recall", "accepted") in sim.acks
    assert decision.next_state.obligations == ()
    sim.run(3)
    assert sim.mining_kw == pytest.approx(18000)


def test_recall_of_unknown_obligation_is_rejected() -> None:
    sim = running_site()
    sim.dispatch("RECALL", "X", recall_id="nope")
    sim.step()
    assert ("X", "rejected") in sim.acks


def test_obligation_ends_at_its_end_time() -> None:
    sim = running_site()
    sim.dispatch("ECRS", "E1", mw=10.0, end=sim.now + 10)
    sim.run(5)
    assert sim.mining_kw == pytest.approx(8000)
    sim.run(10)
    assert sim.last is not None
    assert sim.last.next_state.obligations == ()
    assert sim.mining_kw == pytest.approx(18000)


def test_clr_is_a_ceiling_on_mining_load() -> None:
    sim = running_site()
    sim.dispatch("CLR", "C1", mw=4.0)
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(4000)
    assert sim.targets() == {"eff": 4000, "mid": 0, "old": 0}


def test_limit_caps_site_import_minus_margin() -> None:
    sim = running_site()
    sim.dispatch("LIMIT", "L1", mw=20.0)
    decision = sim.step()
    # 20000 - margin 500 - GPU reservation 10000 - aux 1000
    assert decision.plan.mining_cap_kw == pytest.approx(8500)
    accepted = [a for a in decision.acks if a.id == "L1" and a.status == "accepted"]
    assert accepted[0].target_kw == pytest.approx(8500)


@pytest.mark.parametrize(("level", "cap_kw"), [(1, 18500.0), (2, 9250.0), (3, 0.0)])
def test_eea_levels_scale_the_envelope(level: int, cap_kw: float) -> None:
    sim = running_site(dispatch={"eea1_fraction": 1.0, "eea2_fraction": 0.5})
    sim.dispatch("EEA", "EEA-msg", level=level)
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(cap_kw)
    assert [o.id for o in decision.next_state.obligations] == ["EEA"]
    if cap_kw < 18000:
        assert decision.plan.binding == "eea"


def test_eea_level_zero_clears_it() -> None:
    sim = running_site()
    sim.dispatch("EEA", "a", level=3)
    sim.step()
    sim.dispatch("EEA", "b", level=0)
    decision = sim.step()
    assert decision.next_state.obligations == ()
    sim.run(2)
    assert sim.mining_kw == pytest.approx(18000)


def test_4cp_curtails_only_inside_its_window() -> None:
    sim = running_site()
    start = sim.now + 10
    sim.dispatch("4CP", "CP1", start=start, end=start + 20)
    decision = sim.step()
    assert [o.id for o in decision.next_state.obligations] == ["CP1"]  # listed from receipt
    assert sim.mining_kw == pytest.approx(18000)
    sim.run(12)
    assert sim.mining_kw == 0
    assert sim.last is not None
    assert sim.last.plan.binding == "4cp"
    assert ("CP1", "complied") in sim.acks
    sim.run(20)
    assert sim.last.next_state.obligations == ()
    assert sim.mining_kw == pytest.approx(18000)


def test_resent_instruction_keeps_its_first_level() -> None:
    sim = running_site()
    sim.dispatch("ECRS", "E1", mw=5.0)
    sim.run(3)
    sim.dispatch("ECRS", "E1", mw=5.0)  # gateway resend while load is already lower
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(13000)


def test_dispatch_heartbeat_loss_curtails() -> None:
    sim = running_site(feeds={"dispatch_heartbeat_s": 10, "on_dispatch_stale": "curtail"})
    sim.dispatch("HEARTBEAT", "hb")
    sim.run(8)
    assert sim.mining_kw == pytest.approx(18000)
    assert not [a for a in sim.acks if a[0] == "hb"]  # heartbeats are not acked
    decision = sim.run(5)
    assert "dispatch_stale" in decision.plan.failsafe
    assert sim.mining_kw == 0


def test_dispatch_heartbeat_loss_with_hold_freezes() -> None:
    sim = SiteSim(make_config(
        feeds={"dispatch_heartbeat_s": 5, "on_dispatch_stale": "hold"},
        control={"ramp_up_kw_per_s": 3000},
    ))  # fmt: skip
    sim.run(6)  # stale after 5 s without a dispatch message
    held = sim.mining_kw
    decision = sim.run(10)
    assert "dispatch_stale" in decision.plan.failsafe
    assert sim.mining_kw == pytest.approx(held)
    assert held < 18000


def test_an_instruction_id_of_eea_does_not_collide_with_the_eea_state() -> None:
    sim = running_site()
    sim.dispatch("ECRS", "EEA", mw=5.0)  # a gateway may use any id
    sim.step()
    sim.dispatch("EEA", "e-clear", level=0)
    decision = sim.step()
    assert [o.instruction.type.value for o in decision.next_state.obligations] == ["ECRS"]
    assert decision.plan.mining_cap_kw == pytest.approx(13000)
