"""What a decision says about itself: its reasons (one per stage that narrowed the cap or raised
a failsafe, in pipeline order), whether the override changed, and the dispatch shortfall."""

from __future__ import annotations

from controller.core.plan import Reason
from tests.unit.harness import SiteSim, make_config

POI = "POI limit less the GPU reservation, aux and margin"


def running_site(**sections: object) -> SiteSim:
    sim = SiteSim(make_config(**sections))
    sim.run(5)
    return sim


def stages(sim: SiteSim) -> list[str]:
    assert sim.last is not None
    return [r.stage for r in sim.last.reasons]


def test_in_the_steady_state_the_envelope_is_the_only_reason() -> None:
    sim = running_site()
    assert sim.last is not None
    # 30000 POI - 10000 firm GPU - 1000 aux - 500 margin
    assert sim.last.reasons == (Reason("safety", 18500.0, POI),)
    assert not sim.last.override_changed
    assert sim.last.shortfall_kw == 0.0


def test_an_islanded_site_names_its_backup_limit() -> None:
    sim = running_site(site={"backup_limit_kw": 25000})
    sim.islanded = True
    decision = sim.step()
    assert decision.reasons[0].detail.startswith("backup limit (islanded)")
    assert decision.reasons[0].cap_kw == decision.plan.envelope_kw


def test_a_binding_deployment_is_a_dispatch_reason_after_the_envelope() -> None:
    sim = running_site()
    sim.dispatch("ECRS", "VDI-7", mw=6.0)
    decision = sim.step()
    assert decision.reasons[1:] == (Reason("dispatch", 12000.0, "ECRS VDI-7 caps mining"),)
    assert decision.plan.mining_cap_kw == 12000.0


def test_a_deployment_above_the_envelope_narrows_nothing_and_says_nothing() -> None:
    sim = running_site()
    sim.dispatch("CLR", "C1", mw=25.0)
    decision = sim.step()
    assert [r.stage for r in decision.reasons] == ["safety"]


def test_eea_names_its_level() -> None:
    sim = running_site()
    sim.dispatch("EEA", "E1", level=2)
    decision = sim.step()
    assert decision.reasons[1].detail == "EEA level 2 caps mining"
    assert decision.reasons[1].cap_kw == decision.plan.mining_cap_kw


def test_override_reason_and_override_changed() -> None:
    sim = running_site()
    sim.override("limit", limit_kw=5000.0)
    decision = sim.step()
    assert decision.override_changed
    assert decision.reasons[-1].stage == "override"
    assert decision.reasons[-1].cap_kw == 5000.0
    assert decision.reasons[-1].detail.startswith("override limit by op caps mining at 5000")
    assert not sim.step().override_changed  # the same override stays: no change
    sim.override("auto")
    decision = sim.step()
    assert decision.override_changed
    assert "override" not in [r.stage for r in decision.reasons]


def test_override_run_narrows_nothing() -> None:
    sim = running_site()
    sim.override("run")
    decision = sim.step()
    assert decision.override_changed
    assert [r.stage for r in decision.reasons] == ["safety"]


def test_a_frequency_trip_is_a_reason_without_a_cap() -> None:
    sim = running_site()
    sim.frequency_hz = 59.6
    decision = sim.step()
    assert decision.reasons[-1].stage == "frequency"
    assert decision.reasons[-1].cap_kw is None


def test_a_stale_price_is_a_failsafe_reason_that_curtails_or_holds() -> None:
    sim = running_site(feeds={"on_price_stale": "curtail", "price_stale_s": 60})
    sim.price_at = sim.now - 120.0
    decision = sim.step()
    assert "price_stale" in decision.plan.failsafe
    last = decision.reasons[-1]
    assert (last.stage, last.cap_kw) == ("failsafe", 0.0)
    assert last.detail.startswith("price_stale: ") and last.detail.endswith("mining is curtailed")

    held = running_site(feeds={"price_stale_s": 60})
    held.price_at = held.now - 120.0
    decision = held.step()
    last = decision.reasons[-1]
    assert (last.stage, last.cap_kw) == ("failsafe", None)
    assert last.detail.endswith("every pool holds")


def test_a_stale_dispatch_heartbeat_is_a_failsafe_reason_in_the_dispatch_stage() -> None:
    sim = running_site(feeds={"dispatch_heartbeat_s": 2})
    assert sim.last is not None
    reasons = sim.last.reasons
    assert [r.stage for r in reasons] == ["safety", "failsafe"]
    assert reasons[1].cap_kw == 0.0
    assert reasons[1].detail.startswith("dispatch_stale: no dispatch message for")
    assert sim.last.plan.failsafe == frozenset({"dispatch_stale"})


def test_a_stale_site_meter_is_a_failsafe_reason_of_the_safety_stage() -> None:
    sim = running_site()
    sim.site_meter_fresh = False
    decision = sim.step()
    assert [r.stage for r in decision.reasons] == ["safety", "failsafe"]
    assert decision.reasons[1].detail.startswith("site_meter_stale: ")
    assert decision.reasons[1].cap_kw is None
