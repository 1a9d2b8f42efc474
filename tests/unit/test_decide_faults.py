"""The findings of the safety review (issue 6), each as a table test of decide().

Startup (unknown pools count at max_kw, are never raised, are commanded when a cap needs them
lower), seq continuity, drift, the measured-free room for raises, the escalation timer of a
staggered lowering, plan states, dispatch ids, stale price and silent agents (CONTRACT 7).
"""

from __future__ import annotations

import pytest

from controller.config import Config
from controller.core.state import NEVER, ControllerState, PoolState
from tests.unit.harness import SiteSim, make_config

POI_HEADROOM_KW = 30000 - 500  # the harness site: POI 30 MW, margin 0.5 MW


def site_kw(sim: SiteSim) -> float:
    """What the site meter sees: GPU + every pool's real draw + aux."""
    return sim.gpu_kw + sim.mining_kw + sim.config.site.aux_kw


def running(sim: SiteSim, seconds: float = 5) -> SiteSim:
    sim.run(seconds)
    assert sim.mining_kw == 18000
    return sim


# -- startup ---------------------------------------------------------------------------------


def test_pool_unheard_at_start_is_left_alone_then_commanded_when_a_cap_needs_it_lower() -> None:
    sim = SiteSim(make_config())
    sim.power_kw.update({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
    sim.unreported.add("mid")  # its agent has not said anything yet; it draws 6 MW
    decision = sim.step()
    mid = decision.plan.pools["mid"]
    assert (mid.target_kw, mid.target_at) == (6000, NEVER)  # counted at max_kw, not commanded
    assert decision.plan.mining_measured_kw == 18000
    sim.override("curtail")
    decision = sim.step()
    mid = decision.plan.pools["mid"]
    assert (mid.target_kw, mid.seq, mid.target_at) == (0, 1, sim.now)  # commanded like any other
    # nobody answers: after confirm_timeout_s its PDU outlets are cut (I9)
    mid = sim.run(6).plan.pools["mid"]
    assert (mid.cut, mid.state) == (True, "escalated")


def test_restored_pool_without_telemetry_is_never_raised_and_counts_at_max_kw() -> None:
    sim = SiteSim(make_config())
    restored = PoolState(target_kw=0.0, seq=7, on=False, confirmed=False, state="ramping")
    sim.state = ControllerState(
        started_at=sim.now,
        pools={
            "eff": restored,
            "mid": PoolState(target_kw=6000.0, seq=3, on=True),
            "old": restored,
        },
        last_dispatch_at=sim.now,
    )
    sim.power_kw.update({"eff": 0.0, "mid": 6000.0, "old": 0.0})
    sim.applied_seq.update({"eff": 7, "mid": 3, "old": 7})  # the agents carried them out
    sim.unreported.add("old")
    sim.dispatch("CLR", "C1", mw=8.0)
    for _ in range(8):
        decision = sim.step()
        # old is unknown: it may draw 6 MW, so nothing is raised into the CLR's 8 MW but 2 MW
        assert decision.plan.pools["old"].target_kw == 0
        assert decision.plan.pools["eff"].target_kw + decision.plan.pools["mid"].target_kw <= 8000
        assert decision.plan.pools["eff"].target_kw <= 2000 + 1e-6
    sim.unreported.clear()  # old reports 0 kW: the room is real now
    sim.run(3)
    assert sim.targets()["eff"] == 6000


def test_outlet_pool_unheard_at_start_has_no_outlet_vector() -> None:
    sim = SiteSim(_one_outlet_pool(max_kw=80, efficiency_j_per_th=20.0, outlets=8, outlet_kw=10))
    sim.unreported.add("px")
    for _ in range(3):
        px = sim.step().plan.pools["px"]
        assert (px.outlets_on, px.target_at) == (None, NEVER)  # the applier leaves it as it is


def test_seq_continues_above_an_agent_seq_reported_after_the_first_decision() -> None:
    sim = SiteSim(make_config())
    sim.power_kw.update({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
    sim.unreported.add("eff")
    sim.cmd_seq["eff"] = 3
    sim.step()
    sim.unreported.clear()
    sim.applied_seq["eff"] = 40  # a previous life of the daemon got this far
    sim.step()
    sim.override("curtail")
    decision = sim.step()
    assert decision.plan.pools["eff"].seq == 41


def test_first_telemetry_of_a_blind_pool_reseeds_it() -> None:
    sim = SiteSim(make_config(), price=None)
    sim.power_kw.update({"eff": 6000.0, "mid": 0.0, "old": 6000.0})
    sim.unreported.add("mid")
    sim.step()
    sim.unreported.clear()  # mid reports: it was curtailed all along
    decision = sim.step()
    mid = decision.plan.pools["mid"]
    assert (mid.target_kw, mid.on, mid.state, mid.target_at) == (0, False, "curtailed", NEVER)


# -- drift -----------------------------------------------------------------------------------


def test_confirmed_pool_whose_power_climbs_is_recommanded_then_escalated() -> None:
    sim = SiteSim(make_config(), price=900.0)
    sim.run(5)
    assert sim.mining_kw == 0
    mid = sim.last.plan.pools["mid"] if sim.last else None
    assert mid is not None and mid.state == "curtailed"
    seq = mid.seq
    sim.stuck.add("mid")  # a miner rebooted at full power and ignores commands for a while
    sim.stuck_power_kw["mid"] = 6000.0
    sim.power_kw["mid"] = 6000.0
    decision = sim.step()
    mid = decision.plan.pools["mid"]
    assert (mid.seq, mid.confirmed, mid.state) == (seq + 1, False, "ramping")
    mid = sim.run(5).plan.pools["mid"]
    assert (mid.cut, mid.state) == (True, "escalated")
    assert sim.power_kw["mid"] == 0


def test_drift_of_a_pool_without_pdus_is_faulted_and_the_site_returns_under_its_poi() -> None:
    sim = SiteSim(make_config(), price=80.0)  # old (68 $/MWh breakeven) curtails, 12 MW run
    sim.run(5)
    assert sim.targets() == {"eff": 6000, "mid": 6000, "old": 0}
    sim.gpu_kw = 16000.0  # the tenant grows: 12.5 MW left for mining
    sim.run(2)
    sim.stuck.add("old")  # old restarts at full power: 16 + 18 + 1 = 35 MW against a 30 MW POI
    sim.stuck_power_kw["old"] = 6000.0
    sim.power_kw["old"] = 6000.0
    sim.step()  # the others make room at once: the cap binds on max(target, measured)
    assert site_kw(sim) <= POI_HEADROOM_KW + 1e-6
    for _ in range(11):
        sim.step()
        assert site_kw(sim) <= POI_HEADROOM_KW + 1e-6
    assert sim.last is not None
    assert sim.last.plan.pools["old"].state == "faulted"
    assert site_kw(sim) <= POI_HEADROOM_KW + 1e-6


# -- merit-order swap and the escalation timer -------------------------------------------------


def test_merit_swap_under_a_binding_cap_lowers_first_and_raises_after() -> None:
    config = make_config(
        pools=[
            {"name": "eff", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 17.0,
             "pdus": ["pdu-eff"]},
            {"name": "mid", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 22.0,
             "pdus": ["pdu-mid"], "strike_usd_per_mwh": 100.0},
            {"name": "old", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 30.0},
        ]
    )  # fmt: skip
    sim = SiteSim(config)
    sim.run(3)
    sim.dispatch("CLR", "C1", mw=6.0)
    sim.run(4)
    assert sim.targets() == {"eff": 6000, "mid": 0, "old": 0}
    sim.delayed = {"eff", "mid", "old"}  # commands take a step to act: lowering is not instant
    sim.pending = {n: (sim.power_kw[n], sim.applied_seq[n]) for n in sim.delayed}
    sim.hashprice = 40.0  # eff's breakeven falls to 96 $/MWh, under mid's strike of 100
    tolerance_kw = 0.02 * 6000
    for _ in range(8):
        sim.step()
        assert sim.mining_kw <= 6000 + tolerance_kw
    assert sim.targets() == {"eff": 0, "mid": 6000, "old": 0}


def test_staggered_lowering_keeps_the_escalation_timer_running() -> None:
    sim = running(SiteSim(make_config()))
    sim.stuck.add("old")  # no PDUs: straight to faulted after confirm_timeout_s (5 s)
    sim.stuck_power_kw["old"] = 6000.0
    first_lowering = None
    for _ in range(10):
        sim.gpu_kw += 500.0  # the envelope shrinks every second: old is lowered again each time
        decision = sim.step()
        old = decision.plan.pools["old"]
        if first_lowering is None and old.target_kw < 6000:
            first_lowering = sim.now
    assert first_lowering is not None
    assert sim.last is not None
    assert sim.last.plan.pools["old"].state == "faulted"
    assert sim.last.plan.pools["old"].target_at == first_lowering


def test_target_zero_is_curtailed_only_once_confirmed() -> None:
    sim = running(SiteSim(make_config()))
    sim.price = 900.0
    eff = sim.step().plan.pools["eff"]
    assert (eff.target_kw, eff.confirmed, eff.state) == (0, False, "ramping")
    eff = sim.step().plan.pools["eff"]
    assert (eff.confirmed, eff.state) == (True, "curtailed")


# -- dispatch ids ------------------------------------------------------------------------------


def test_an_active_id_with_another_type_is_rejected_and_the_deployment_stays() -> None:
    sim = running(SiteSim(make_config()))
    sim.dispatch("ECRS", "VDI-9", mw=6.0)
    sim.run(3)
    sim.dispatch("CLR", "VDI-9", mw=18.0)  # a gateway bug reuses the id
    decision = sim.step()
    rejected = [a for a in decision.acks if a.id == "VDI-9"]
    assert [(a.status, a.reason) for a in rejected] == [("rejected", "id_conflict")]
    (ob,) = decision.next_state.obligations
    assert (ob.instruction.type.value, ob.cap_kw) == ("ECRS", 12000)
    sim.price = -10.0
    sim.run(3)
    assert sim.mining_kw == pytest.approx(12000)


def test_a_resend_is_acked_with_the_current_status_and_keeps_its_baseline() -> None:
    sim = running(SiteSim(make_config()))
    sim.dispatch("ECRS", "VDI-3", mw=6.0)
    sim.run(3)
    assert ("VDI-3", "complied") in sim.acks
    sim.dispatch("ECRS", "VDI-3", mw=6.0)  # resent, measured now 12 MW: the baseline stays 18
    decision = sim.step()
    (ack,) = [a for a in decision.acks if a.id == "VDI-3"]
    assert (ack.status, ack.target_kw, ack.measured_kw) == ("complied", 12000, 12000)
    (ob,) = decision.next_state.obligations
    assert (ob.instruction.mining_kw_at_receipt, ob.status) == (18000, "complied")


# -- stale price -------------------------------------------------------------------------------


def test_hold_on_a_stale_price_raises_nothing() -> None:
    sim = running(SiteSim(make_config(feeds={"price_stale_s": 60, "on_price_stale": "hold"})))
    sim.dispatch("CLR", "C1", mw=10.0)
    sim.run(3)
    assert sim.targets() == {"eff": 6000, "mid": 4000, "old": 0}
    sim.price_at = sim.now  # the feed goes quiet
    sim.run(61)
    sim.dispatch("RECALL", "C1-R", recall_id="C1")
    for _ in range(5):
        decision = sim.step()
        assert "price_stale" in decision.plan.failsafe
        assert sim.targets() == {"eff": 6000, "mid": 4000, "old": 0}  # part load not raised


def test_no_price_ever_is_a_price_stale_failsafe_once_price_stale_s_passed() -> None:
    sim = SiteSim(make_config(feeds={"price_stale_s": 30, "on_price_stale": "hold"}), price=None)
    assert "price_stale" not in sim.run(20).plan.failsafe
    assert "price_stale" in sim.run(15).plan.failsafe


# -- silent agents -----------------------------------------------------------------------------


def test_silent_agent_is_faulted_its_load_counted_and_cut_when_a_cap_needs_it() -> None:
    sim = running(SiteSim(make_config(control={"pool_stale_s": 10})))
    sim.go_silent("mid")
    sim.run(5)
    assert sim.last is not None
    assert sim.last.plan.pools["mid"].state == "running"  # not stale yet
    sim.run(6)
    mid = sim.last.plan.pools["mid"]
    assert (mid.state, mid.target_kw, mid.cut) == ("faulted", 6000, False)  # held, not cut
    sim.dispatch("CLR", "C1", mw=10.0)  # 6 MW of mid still count: eff and old share 4 MW
    decision = sim.step()
    assert decision.plan.pools["eff"].target_kw + decision.plan.pools["old"].target_kw <= 4000
    assert decision.plan.pools["mid"].target_kw == 6000
    sim.override("curtail")  # a cap that needs mid lower: its outlets are cut at once
    mid = sim.step().plan.pools["mid"]
    assert (mid.target_kw, mid.cut, mid.state) == (0, True, "faulted")


def test_pool_never_heard_from_is_unreachable_after_pool_stale_s() -> None:
    sim = SiteSim(make_config(control={"pool_stale_s": 10}))
    sim.unreported.add("mid")
    sim.power_kw["mid"] = 6000.0
    assert sim.run(5).plan.pools["mid"].state != "faulted"
    assert sim.run(7).plan.pools["mid"].state == "faulted"


def test_drift_room_is_not_given_back_while_the_drifting_pool_still_measures_high() -> None:
    sim = SiteSim(make_config(), price=80.0)
    sim.run(5)
    sim.gpu_kw = 16000.0  # 12.5 MW for mining: eff and mid run, old curtailed
    sim.run(2)
    sim.delayed = {"eff", "mid"}  # the lowering they are told takes a step to show
    sim.pending = {n: (sim.power_kw[n], sim.applied_seq[n]) for n in sim.delayed}
    sim.stuck.add("old")
    sim.stuck_power_kw["old"] = 6000.0
    sim.power_kw["old"] = 6000.0
    first = sim.step()  # room made at once
    lowered = {n: first.plan.pools[n].target_kw for n in ("eff", "mid")}
    for _ in range(3):  # old is now a lowering on its way, but it still measures 6 MW
        decision = sim.step()
        for name, target_kw in lowered.items():
            assert decision.plan.pools[name].target_kw <= target_kw + 1e-6


def test_a_cut_pool_is_raised_only_into_room_for_all_it_can_draw() -> None:
    # A stuck agent whose PDU was cut: lifting the cut energises every outlet, and its miners
    # draw their full load until it is proven obedient. A limit leaving less room than that
    # must not lift the cut (it used to flap: lift, overdraw, escalate, cut, lift...).
    sim = running(SiteSim(make_config()))
    sim.stuck.add("eff")  # the most efficient pool: the first one given room
    sim.stuck_power_kw["eff"] = 6000.0
    sim.override("curtail", ttl_s=3600)
    eff = sim.run(12).plan.pools["eff"]
    assert (eff.cut, sim.power_kw["eff"]) == (True, 0.0)
    sim.override("limit", ttl_s=3600, limit_kw=1000.0)
    for _ in range(20):
        decision = sim.step()
        assert sim.mining_kw <= 1000 + 1e-6, decision.plan.pools["eff"]
    assert decision.plan.pools["eff"].cut


def test_an_outlet_pool_seeded_at_its_measured_load_is_not_cut_for_wandering_above_it() -> None:
    # Found by the fuzz run: a seeded outlet pool's target is a measurement (its outlets were
    # never commanded); a load a little above it is not drift, and must not be "re-commanded"
    # down to whole outlets, which cut the pool without a price reason.
    sim = SiteSim(
        _one_outlet_pool(max_kw=65.5, efficiency_j_per_th=21.5, outlets=1, outlet_kw=65.5),
        price=None,
    )
    sim.power_kw["px"] = 32.75  # half of its one outlet's rating
    sim.stuck.add("px")
    sim.stuck_power_kw["px"] = 40.0  # then its miners draw a little more
    for _ in range(5):
        px = sim.step().plan.pools["px"]
        assert (px.target_kw, px.target_at) == (32.75, NEVER)


def _one_outlet_pool(
    *, max_kw: float, efficiency_j_per_th: float, outlets: int, outlet_kw: float
) -> Config:
    """A site with one outlet-switched pool `px` on PDU `pdu-a` (and the tenant's PDU)."""
    pool = {"name": "px", "driver": "pdu", "max_kw": max_kw,
            "efficiency_j_per_th": efficiency_j_per_th, "pdus": ["pdu-a"]}  # fmt: skip
    pdus = [
        {"name": "pdu-a", "host": "h", "port": 1, "outlets": outlets, "outlet_kw": outlet_kw},
        {"name": "pdu-gpu", "host": "h", "port": 3, "outlets": 4, "outlet_kw": 10,
         "protected": True},
    ]  # fmt: skip
    return make_config(pools=[pool], pdus=pdus)
