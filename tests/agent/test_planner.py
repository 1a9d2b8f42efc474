"""The planner: fewest changes, merit order, never over the target."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.agent.planner import Desired, MinerView, plan

LUX_STEPS = tuple(round(3000 * (0.55 + 0.05 * i)) for i in range(10))  # 1650 .. 3000


def sleeper(
    ip: str, j_per_th: float, *, sleeping: bool = False, nominal: float = 3000.0
) -> MinerView:
    return MinerView(ip, True, nominal, j_per_th, sleeping, None, 0.0 if sleeping else nominal)


def limitable(ip: str, j_per_th: float = 25.0, limit: float | None = None) -> MinerView:
    draw = 3000.0 if limit is None else limit
    return MinerView(ip, True, 3000.0, j_per_th, False, limit, draw, LUX_STEPS)


def test_full_target_wakes_everyone_and_lifts_limits() -> None:
    miners = [sleeper("a", 30, sleeping=True), limitable("b", limit=1650.0), sleeper("c", 20)]
    result = plan(miners, 9000.0)
    assert result.actions == {"a": Desired(False), "b": Desired(False)}  # c is already right
    assert result.planned_w == 9000.0


def test_sleep_only_pool_sleeps_least_efficient_first_and_wakes_in_reverse() -> None:
    miners = [sleeper("m20", 20), sleeper("m35", 35), sleeper("m25", 25), sleeper("m30", 30)]
    half = plan(miners, 6500.0)
    assert half.actions == {"m35": Desired(True), "m30": Desired(True)}
    assert half.planned_w == 6000.0  # never over: 6500 fits two whole miners
    after = [sleeper(m.ip, m.j_per_th, sleeping=half.desired[m.ip].sleeping) for m in miners]
    raised = plan(after, 9000.0)
    assert raised.actions == {"m30": Desired(False)}  # the most efficient sleeper wakes first
    assert raised.planned_w == 9000.0


def test_limits_absorb_a_cut_before_anything_sleeps() -> None:
    miners = [sleeper("s", 30), limitable("l1"), limitable("l2")]
    result = plan(miners, 7000.0)
    assert "s" not in result.actions  # the sleep-only miner keeps mining
    assert result.planned_w <= 7000.0
    limits = [result.desired[ip].limit_w for ip in ("l1", "l2")]
    assert all(limit is not None and limit <= 2000 for limit in limits)
    assert result.planned_w >= 7000.0 - (LUX_STEPS[1] - LUX_STEPS[0])  # within one step


def test_below_every_floor_sleepers_go_first_then_limitable_least_efficient_first() -> None:
    miners = [sleeper("s", 20), limitable("l_good", 22), limitable("l_bad", 28)]
    result = plan(miners, 2000.0)
    assert result.desired["s"] == Desired(True)
    assert result.desired["l_bad"] == Desired(True)
    assert result.desired["l_good"].limit_w == 1950.0
    assert plan(miners, 0.0).planned_w == 0.0
    assert all(d.sleeping for d in plan(miners, 0.0).desired.values())


def test_an_unreachable_miner_counts_at_its_last_draw() -> None:
    gone = MinerView("gone", False, 3000.0, 25.0, False, None, 2800.0)
    result = plan([gone, sleeper("a", 30), sleeper("b", 31)], 6000.0)
    assert "gone" not in result.desired
    assert result.actions == {"b": Desired(True)}
    assert result.planned_w == 5800.0


def test_an_unchanged_target_changes_nothing() -> None:
    miners = [sleeper("a", 20), sleeper("b", 30, sleeping=True), limitable("c", limit=2100.0)]
    first = plan(miners, 5100.0)
    assert first.actions == {}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(15, 40), st.booleans(), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    st.floats(0, 40_000),
)
def test_property_a_plan_never_draws_over_its_target(
    specs: list[tuple[bool, float, bool, bool]], target_w: float
) -> None:
    miners = []
    for i, (takes_limit, j, asleep, reachable) in enumerate(specs):
        miner = limitable(f"m{i}", j) if takes_limit else sleeper(f"m{i}", j, sleeping=asleep)
        if not reachable:  # silent: counted at its last draw, which no action can change
            miner = MinerView(miner.ip, False, miner.nominal_w, j, False, None, 2900.0)
        miners.append(miner)
    fixed_w = sum(m.power_w for m in miners if not m.reachable)
    result = plan(miners, target_w)
    assert result.planned_w <= max(target_w, fixed_w) + 1e-6
    assert not set(result.actions) - {m.ip for m in miners if m.reachable}
    drawn = fixed_w + sum(
        0.0 if d.sleeping else (m.nominal_w if d.limit_w is None else d.limit_w)
        for m in miners
        if m.reachable
        for d in [result.desired[m.ip]]
    )
    assert abs(drawn - result.planned_w) < 1e-6
    # Planned again from where it leads, the same target changes nothing (fewest changes).
    after = [
        MinerView(m.ip, True, m.nominal_w, m.j_per_th, d.sleeping, d.limit_w,
                  0.0 if d.sleeping else (d.limit_w or m.nominal_w), m.limits_w)
        if m.reachable else m
        for m in miners
        for d in [result.desired.get(m.ip, Desired(False))]
    ]  # fmt: skip
    assert plan(after, target_w).actions == {}
