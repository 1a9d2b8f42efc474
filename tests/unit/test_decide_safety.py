"""Table tests for the safety envelope, GPU reservation and failsafes (I2, I3, I4, I11)."""

from __future__ import annotations

import pytest

from controller.core.site import compile_site
from tests.unit.harness import SiteSim, make_config


def running_site(**sections: object) -> SiteSim:
    sim = SiteSim(make_config(**sections))
    sim.run(5)
    return sim


def test_cheap_price_runs_every_pool_under_the_envelope() -> None:
    sim = running_site()
    # 30000 POI - 10000 firm GPU - 1000 aux - 500 margin = 18500 >= 3 x 6000
    assert sim.targets() == {"eff": 6000, "mid": 6000, "old": 6000}
    assert sim.last is not None
    assert sim.last.plan.mining_cap_kw == pytest.approx(18500)
    assert sim.last.plan.binding == "price"


def test_least_efficient_pool_is_curtailed_first_when_the_envelope_binds() -> None:
    sim = running_site()
    sim.gpu_kw = 14000.0  # tenant above its firm 10000: reservation follows the meter (I3)
    decision = sim.step()
    assert decision.plan.gpu_reserved_kw == pytest.approx(14000)
    assert decision.plan.mining_cap_kw == pytest.approx(14500)
    assert sim.targets() == {"eff": 6000, "mid": 6000, "old": 2500}
    assert decision.plan.binding == "safety"
    assert decision.plan.pools["old"].reason == "safety"


@pytest.mark.parametrize(
    ("gpu_kw", "reserved_kw"), [(0.0, 10000.0), (9999.0, 10000.0), (12000.0, 12000.0)]
)
def test_gpu_reservation_is_max_of_firm_and_measured(gpu_kw: float, reserved_kw: float) -> None:
    sim = running_site()
    sim.gpu_kw = gpu_kw
    assert sim.step().plan.gpu_reserved_kw == pytest.approx(reserved_kw)


def test_stale_tenant_meter_counts_at_its_last_reading() -> None:
    sim = running_site()
    sim.gpu_kw = 16000.0
    sim.step()
    snap_gpu = 16000.0
    sim.gpu_kw = 0.0  # the next snapshots carry a fresh 0 unless we freeze the reading
    from dataclasses import replace

    from controller.core.decide import decide
    from controller.model import Reading

    assert sim.state is not None
    snap = sim.snapshot()
    stale = replace(snap, meters_kw={**snap.meters_kw, "gpu-a": Reading(snap_gpu, sim.now - 60)})
    decision = decide(stale, sim.state, sim.now + 1, sim.site)
    assert decision.plan.gpu_reserved_kw == pytest.approx(16000)
    assert decision.plan.mining_target_kw <= 30000 - 16000 - 1000 - 500


def test_site_meter_stale_never_raises_but_still_lowers() -> None:
    sim = SiteSim(make_config(control={"ramp_up_kw_per_s": 1000}))
    sim.run(3)
    before = sim.targets()
    sim.site_meter_fresh = False
    decision = sim.run(10)
    assert "site_meter_stale" in decision.plan.failsafe
    assert sim.targets() == before  # frozen: no pool rises open-loop
    sim.gpu_kw = 17000.0  # the reservation still acts: caps still lower
    decision = sim.step()
    assert decision.plan.mining_target_kw <= 30000 - 17000 - 1000 - 500


def test_unexplained_site_load_is_counted_as_aux() -> None:
    sim = running_site()
    from dataclasses import replace

    from controller.core.decide import decide
    from controller.model import Reading

    assert sim.state is not None
    snap = sim.snapshot()
    site_kw = snap.meters_kw["poi"].value + 3000  # 3 MW more than GPU + mining + aux
    snap = replace(snap, meters_kw={**snap.meters_kw, "poi": Reading(site_kw, sim.now + 1)})
    decision = decide(snap, sim.state, sim.now + 1, sim.site)
    assert decision.plan.mining_cap_kw == pytest.approx(18500 - 3000)


def test_islanded_site_uses_the_backup_limit() -> None:
    sim = running_site(site={"poi_limit_kw": 30000, "backup_limit_kw": 0})
    sim.islanded = True
    decision = sim.step()
    assert decision.plan.mining_cap_kw == 0
    assert set(sim.targets().values()) == {0}


def test_islanded_with_backup_capacity_caps_mining_to_what_is_left() -> None:
    sim = running_site(site={"poi_limit_kw": 30000, "backup_limit_kw": 15000})
    sim.islanded = True
    decision = sim.step()
    assert decision.plan.mining_cap_kw == pytest.approx(15000 - 10000 - 1000 - 500)
    assert decision.plan.mining_target_kw <= 3500


def test_plan_names_only_configured_pools_never_a_pdu() -> None:
    sim = running_site()
    assert sim.last is not None
    assert set(sim.last.plan.pools) == {"eff", "mid", "old"}


def test_frequency_trip_cuts_ufr_pools_at_once_and_resets_after_hold() -> None:
    config = make_config(dispatch={"frequency_reset_s": 60})
    sim = SiteSim(config)
    sim.run(5)
    sim.frequency_hz = 59.6
    decision = sim.step(0.1)
    mid = decision.plan.pools["mid"]
    assert (mid.target_kw, mid.state, mid.reason, mid.cut) == (0, "tripped", "frequency", True)
    assert decision.plan.pools["eff"].target_kw == 6000  # only ufr pools trip
    sim.frequency_hz = 59.95
    sim.run(30)
    assert sim.last is not None
    assert sim.last.plan.pools["mid"].state == "tripped"  # must hold 60 s above reset
    sim.frequency_hz = 59.8  # between trip and reset: the hold clock restarts
    sim.step()
    sim.frequency_hz = 59.95
    sim.run(59)
    assert sim.last.plan.pools["mid"].state == "tripped"
    sim.run(3)
    assert sim.last.plan.pools["mid"].target_kw == 6000


def test_frequency_reset_waits_for_the_price_band() -> None:
    sim = SiteSim(make_config(dispatch={"frequency_reset_s": 0}))
    sim.run(3)
    sim.frequency_hz = 59.5
    sim.step()
    sim.frequency_hz = 60.0
    sim.price = 95.0  # mid's breakeven is 92.8: inside the band, a curtailed pool stays off
    sim.run(5)
    assert sim.targets()["mid"] == 0
    sim.price = 80.0
    sim.run(2)
    assert sim.targets()["mid"] == 6000


def test_aux_estimate_is_held_while_pools_are_in_transition() -> None:
    """The site meter sees a ramp before pool telemetry does: that lag is not extra load."""
    from dataclasses import replace

    from controller.core.decide import decide
    from controller.model import Reading

    sim = SiteSim(make_config(control={"ramp_up_kw_per_s": 3000, "confirm_timeout_s": 5}))
    sim.run(2)
    assert sim.state is not None
    assert any(not ps.confirmed for ps in sim.state.pools.values())  # ramp under way
    snap = sim.snapshot()
    lagging = Reading(snap.meters_kw["poi"].value + 3000, sim.now + 0.1)
    snap = replace(snap, meters_kw={**snap.meters_kw, "poi": lagging})
    held = decide(snap, sim.state, sim.now + 0.1, sim.site)
    assert held.plan.mining_cap_kw == pytest.approx(18500)
    settled = SiteSim(make_config())
    settled.run(5)
    assert settled.state is not None
    assert all(ps.confirmed for ps in settled.state.pools.values())
    snap = settled.snapshot()
    real = Reading(snap.meters_kw["poi"].value + 3000, settled.now + 0.1)
    snap = replace(snap, meters_kw={**snap.meters_kw, "poi": real})
    assert decide(snap, settled.state, settled.now + 0.1, settled.site).plan.mining_cap_kw == (
        pytest.approx(15500)
    )


def test_decision_budget_failsafe_never_raises() -> None:
    from dataclasses import replace

    from controller.core.decide import decide

    sim = SiteSim(make_config(control={"ramp_up_kw_per_s": 3000}))
    sim.run(3)
    assert sim.state is not None and sim.last is not None
    before = sim.last.plan.mining_target_kw
    snap = replace(sim.snapshot(), budget_failsafe=True)
    decision = decide(snap, sim.state, sim.now + 1, sim.site)
    assert "decision_budget" in decision.plan.failsafe
    assert decision.plan.mining_target_kw == before


def test_unmetered_tenant_is_counted_once() -> None:
    """Its draw is in the site meter; with its firm reservation it must not count twice."""
    from dataclasses import replace

    from controller.core.decide import decide
    from controller.model import Reading

    config = make_config(
        gpu_tenants=[{"name": "tenant-a", "firm_kw": 10000, "meters": [], "pdus": ["pdu-gpu"]}]
    )
    sim = SiteSim(config)
    sim.run(5)
    assert sim.state is not None
    snap = sim.snapshot()  # the site meter includes the tenant's 9000 kW
    meters = {k: v for k, v in snap.meters_kw.items() if k != "gpu-a"}
    snap = replace(snap, meters_kw={**meters, "poi": Reading(meters["poi"].value, sim.now + 1)})
    decision = decide(snap, sim.state, sim.now + 1, compile_site(config))
    assert decision.plan.mining_cap_kw == pytest.approx(30000 - 10000 - 1000 - 500)
