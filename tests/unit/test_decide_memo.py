"""The steady-walk memo (controller/core/memo.py): used while nothing moves, never past a timer.

Each step here is decided twice, by the harness plant (the state it keeps carries the memo, made
with its compiled site) and by decide() on a freshly compiled site (the memo is of another site:
not used), and the two must be equal; the tests then check that the memo was used during the
quiet stretch and that each timer still turns on time. The memo never crosses sites (a reload)
and never reaches the state store.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from controller.adapters.store import DB_NAME, StateStore
from controller.core.decide import decide
from controller.core.failsafe import curtail_all
from controller.core.plan import Decision
from controller.core.site import compile_site
from controller.runtime import persist
from controller.sim.configs import build_config, site_data
from tests.unit.harness import POOLS, SECTIONS, TENANT, SiteSim, make_config
from tests.unit.loop_rig import make_rig


def step(sim: SiteSim, dt_s: float = 1.0) -> tuple[Decision, bool]:
    """One decision with and without the memo (asserted equal); whether the memo was used."""
    sim.now += dt_s
    snap, state = sim.snapshot(), sim.state
    decision = sim.decide(snap)
    assert decision == decide(snap, state, sim.now, compile_site(sim.config))
    sim.keep(decision)
    sim.apply(decision.plan)
    return decision, decision.next_state.pools is state.pools  # the memo hands its dict back


def test_a_quiet_decision_reuses_the_last_walk() -> None:
    sim = SiteSim(make_config())
    # The first commands' confirm timers turn at 5 s; at a turn, and at the decision right
    # after it (within the rounding margin), the walk runs.
    sim.run(8)
    used = [step(sim)[1] for _ in range(10)]
    assert all(used)
    assert sim.last is not None
    assert sim.last.plan.at == sim.now  # the plan is this decision's, not a copy of the last
    assert sim.last.next_state.last_decision_at == sim.now


def test_a_changed_report_or_price_is_walked_again() -> None:
    sim = SiteSim(make_config())
    sim.run(8)
    assert step(sim)[1]
    sim.power_kw["old"] -= 1.0  # a figure of one report changes
    assert not step(sim)[1]
    assert not step(sim)[1]  # and back: the pool follows its target again
    assert step(sim)[1]  # steady again from there
    sim.price = 900.0
    decision, used = step(sim)
    assert not used
    assert decision.plan.pools["old"].target_kw == 0.0


def test_the_dwell_turns_on_time() -> None:
    sim = SiteSim(make_config(economics={"min_run_s": 60, "min_curtail_s": 60}))
    sim.run(70)
    sim.price = 900.0
    sim.run(5)  # every pool curtailed
    assert sim.last is not None
    changed_at = sim.last.plan.pools["eff"].changed_at
    sim.price = 20.0  # wants to run again, after 60 s curtailed
    used = []
    while sim.now + 1.0 < changed_at + 60.0:
        decision, reused = step(sim)
        used.append(reused)
        assert decision.plan.pools["eff"].target_kw == 0.0
    assert all(used[2:])  # the lowering's confirm timer turned at the first step
    decision, reused = step(sim)
    assert not reused
    assert decision.plan.pools["eff"].target_kw > 0.0


def test_the_confirm_and_fault_timers_turn_on_time() -> None:
    # mid's agent goes silent while drawing 6 MW: its report stays (the same figures, ageing),
    # so it never confirms a lowering: cut after confirm_timeout_s (5 s), faulted 5 s later.
    sim = SiteSim(make_config(control={"pool_stale_s": 60}))
    sim.run(8)
    sim.go_silent("mid")
    sim.price = 900.0
    states: list[str] = []
    used: list[bool] = []
    for _ in range(14):
        decision, reused = step(sim)
        states.append(decision.plan.pools["mid"].state)
        used.append(reused)
    # Lowered at step 0; the others confirm their lowering by step 2, then all is quiet.
    assert states[:5] == ["ramping"] * 5
    assert states[5:10] == ["escalated"] * 5  # cut at step 5: 5 s unconfirmed
    assert states[10:] == ["faulted"] * 4  # 5 s after the cut
    assert used[3:5] == [True, True] and used[7:10] == [True] * 3  # the waits were steady
    assert not used[5] and not used[10]  # each turn was walked


def test_a_silent_agent_goes_stale_on_time() -> None:
    sim = SiteSim(make_config(control={"pool_stale_s": 10}))
    sim.run(8)
    sim.go_silent("eff")  # its report stays as it is: the same figures, ageing
    states: list[str] = []
    used: list[bool] = []
    for _ in range(12):
        decision, reused = step(sim)
        states.append(decision.plan.pools["eff"].state)
        used.append(reused)
    assert states[:10] == ["running"] * 10  # 10 s old at step 9: not over pool_stale_s yet
    assert states[10:] == ["faulted"] * 2
    # Step 0 saw the report change (a silent agent's has no available_kw); step 10 went stale.
    assert all(used[1:10]) and not used[10]


def test_a_memo_is_never_used_with_another_compiled_site() -> None:
    sim = SiteSim(make_config())
    sim.run(8)
    assert step(sim)[1]  # steady: the state carries a memo of the plant's site
    made_with = sim.site
    assert sim.state.memo is not None and sim.state.memo.site is made_with
    sim.now += 1.0
    snap, state = sim.snapshot(), sim.state
    # The same config compiled again is another site: the walk runs (and decides the same).
    again = decide(snap, state, sim.now, compile_site(sim.config))
    assert again.next_state.pools is not state.pools
    assert again == sim.decide(snap)
    # A reload that rates `old` (running at 6 MW) at 4 MW: the memo's walk would keep 6 MW.
    pools = [replace(p, max_kw=4000.0) if p.name == "old" else p for p in POOLS]
    sim.config = build_config(
        site_data(
            pools, [TENANT], poi_limit_kw=30000, aux_kw=1000, margin_kw=500, sections=SECTIONS
        )
    )
    reloaded = sim.decide(snap)
    assert sim.site is not made_with
    assert reloaded.next_state.pools is not state.pools
    assert reloaded.plan.pools["old"].target_kw <= 4000.0
    assert reloaded == decide(snap, replace(state, memo=None), sim.now, sim.site)
    memo = reloaded.next_state.memo
    assert memo is None or memo.site is sim.site
    # Nothing but decide() hands a memo on: the failsafe's state has none.
    assert curtail_all(state, made_with, sim.now).memo is None


def test_a_reload_that_shortens_a_timer_is_not_hidden_by_the_memo() -> None:
    # mid's agent goes silent at 6 MW, so its lowering never confirms; the memo made under a
    # 60 s confirm timeout holds until that turn. A reload to 5 s must cut it at once.
    sim = SiteSim(make_config(control={"pool_stale_s": 60, "confirm_timeout_s": 60}))
    sim.run(8)
    sim.go_silent("mid")
    sim.price = 900.0
    used = [step(sim)[1] for _ in range(10)]
    assert all(used[3:])
    assert sim.state.memo is not None and sim.last is not None
    assert sim.last.plan.pools["mid"].state == "ramping"
    sim.config = make_config(control={"pool_stale_s": 60, "confirm_timeout_s": 5})
    decision, reused = step(sim)
    assert not reused
    assert decision.plan.pools["mid"].state == "escalated"


async def test_the_loop_drops_the_memo_when_a_reload_commits(tmp_path: Path) -> None:
    # The daemon's loop, real store: its state carries the memo from decision to decision, and
    # a reload's commit (a new compiled site) leaves it none.
    rig = await make_rig(make_config(), tmp_path)
    try:
        sced = {"SCEDTimestamp": "2023-11-14T16:13:20", "repeatHourFlag": False,
                "settlementPoint": "HB_WEST", "LMP": 20.0}  # fmt: skip
        rig.message(rig.config.feeds.price_topic.replace("#", "rt"), sced)
        rig.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
        for _ in range(8):
            await rig.loop.step()
            rig.clock.now += 1.0
            rig.follow()
        assert rig.loop.state.memo is not None and rig.loop.state.memo.site is rig.loop.site
        before = rig.loop.state
        rig.loop.prepare(make_config(control={"confirm_timeout_s": 7}))()
        assert rig.loop.state.memo is None
        assert rig.loop.state == before  # nothing else about the state changes
        decision = await rig.loop.step()
        assert decision is not None and decision.next_state.pools is not before.pools
    finally:
        await rig.store.close()


def test_a_state_through_the_store_has_no_memo(tmp_path: Path) -> None:
    sim = SiteSim(make_config())
    sim.run(8)
    assert step(sim)[1]
    state = sim.state
    assert state.memo is not None
    delta = persist.delta(None, state, overrides_accepted=(), nonce_keep_s=60.0, audit=[])
    with StateStore.open(tmp_path / DB_NAME) as store:
        store.write(delta)
        stored = store.load()
    restored = persist.restore(stored, sim.now, sim.site.by_name)
    assert restored.memo is None
    assert restored.pools.keys() == state.pools.keys()  # the records came back, the memo not
    assert {n: p.target_kw for n, p in restored.pools.items()} == {
        n: p.target_kw for n, p in state.pools.items()
    }
