"""Which pools an award keeps running against price (CONTRACT 2.2 AWARD, I12).

While an award is active, price may not take running mining below its floor. Every pool the
price keeps on anyway counts toward it; the rest of the floor is kept on pools price would
curtail, each given an allowance (the most it may run at for the award), chosen so:

- for RRS, on `ufr` pools first (a load resource carries RRS behind under-frequency relays),
  then in merit order (the most efficient first: the last ones price would curtail);
- the allowance of the last pool kept is what the floor still needs, so it runs at part load
  (an outlet pool: the fewest whole outlets that reach it);
- no dip while the kept set changes: a pool about to be kept may need ramp time to come on,
  so pools already running are held as they are (no more) until the kept set's measured load
  covers the floor;
- nothing is started for the floor while raising is barred (a frequency trip, a stale price,
  a stale site meter, the decision budget): only running pools are kept, at what they run at.

Faulted, tripped and unreachable pools are neither kept nor counted: they cannot be commanded.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from controller.core.policies.price import Economics, PriceMode, price_wants_run
from controller.core.site import PoolSpec
from controller.core.state import PoolState
from controller.model import PoolTelemetry

if TYPE_CHECKING:
    from collections.abc import Mapping

    from controller.core.walk import WalkInputs

_EPS_KW = 1e-6
# A candidate: spec, what it runs at now (min of target and measured), what it could run at
# once the walk has raised it (its allowance ceiling).
_Candidate = tuple[PoolSpec, float, float]


def allowances(
    pools: Mapping[str, PoolState],
    telemetry: Mapping[str, PoolTelemetry],
    w: WalkInputs,
    economics: Economics,
    uncounted: frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Pool name -> the kW it may run at for the award floor, for pools price would curtail.

    `uncounted`: cut pools the walk found it cannot lift under the cap; they run nothing.
    """
    need_kw = w.floor_kw if w.floor_kw < w.cap_kw else w.cap_kw
    if need_kw <= _EPS_KW or economics.mode is PriceMode.RUN:
        return {}  # `run` keeps every pool on already
    may_raise = not (w.never_raise or w.trip_active)
    now = w.confirm.now
    free_kw: float | None = None  # the cap's measured free room, for a cut pool (rare)
    wanted_kw = wanted_now_kw = wanted_ufr_kw = 0.0
    candidates: list[_Candidate] = []
    for spec in w.merit:
        name = spec.name
        ps = pools[name]
        if ps.faulted or name in w.unreachable or (w.trip_active and spec.ufr):
            continue
        t = telemetry.get(name)
        measured_kw = t.power_kw if t is not None else spec.max_kw
        available_kw = _available_kw(spec, t)
        # A pool whose PDUs are cut draws nothing until a raise lifts the cut.
        running = ps.on and not ps.cut
        # What it runs at now and will still run at: no more than the walk will let it draw.
        now_kw = min(ps.target_kw, measured_kw, available_kw) if running else 0.0
        if running:
            full_kw = available_kw if may_raise and t is not None else now_kw
        elif ps.on or not may_raise or t is None or name in uncounted:
            full_kw = 0.0  # escalated (held at its target it stays cut), or may not start
        elif ps.cut and spec.outlet_steps_kw is None:
            # Lifting a PDU cut energises every outlet: the walk lifts one only with room for
            # all the pool can draw (walk.py).
            own_kw = measured_kw if measured_kw > ps.target_kw else ps.target_kw
            if free_kw is None:
                free_kw = w.cap_kw - w.faulted_kw - _occupied_kw(pools, telemetry, w)
            full_kw = available_kw if own_kw + free_kw >= spec.max_kw else 0.0
        else:
            full_kw = available_kw
        if price_wants_run(ps, spec, economics, now):
            wanted_kw += full_kw
            wanted_now_kw += now_kw
            if spec.ufr:
                wanted_ufr_kw += full_kw
            if wanted_kw >= need_kw - _EPS_KW and wanted_now_kw >= need_kw - _EPS_KW:
                return {}  # price keeps the floor running by itself (the sums only grow)
        elif full_kw > _EPS_KW:
            candidates.append((spec, now_kw, full_kw))
    kept: dict[str, float] = {}
    need_left_kw = need_kw - wanted_kw
    rrs_left_kw = min(w.floor_rrs_kw, need_kw) - wanted_ufr_kw
    if rrs_left_kw > _EPS_KW:
        for spec, _, full_kw in candidates:
            if spec.ufr and rrs_left_kw > _EPS_KW and need_left_kw > _EPS_KW:
                # Only the RRS part here: the rest of the floor goes in merit order below.
                given = _allowance(spec, full_kw, min(rrs_left_kw, need_left_kw))
                kept[spec.name] = given
                rrs_left_kw -= given
                need_left_kw -= given
    for spec, _, full_kw in candidates:
        if need_left_kw <= _EPS_KW:
            break
        had_kw = kept.get(spec.name, 0.0)  # a ufr pool kept for RRS may carry more
        if had_kw < full_kw - _EPS_KW:
            given = _allowance(spec, full_kw, had_kw + need_left_kw)
            kept[spec.name] = given
            need_left_kw -= given - had_kw
    # The floor as it runs now: pools not yet up are bridged by running ones, held as they are.
    running_kw = wanted_now_kw
    for spec, now_kw, _ in candidates:
        if spec.name in kept:
            running_kw += min(now_kw, kept[spec.name])
    for spec, now_kw, _ in candidates:
        if running_kw >= need_kw - _EPS_KW:
            break
        given = kept.get(spec.name, 0.0)
        if now_kw > given + _EPS_KW:  # runs more than it is counted for: held as it is
            kept[spec.name] = max(given, pools[spec.name].target_kw)
            running_kw += now_kw - given
    return kept


def _occupied_kw(
    pools: Mapping[str, PoolState], telemetry: Mapping[str, PoolTelemetry], w: WalkInputs
) -> float:
    """max(target, measured) over the pools not faulted: what a raise must fit beside."""
    total_kw = 0.0
    for spec in w.merit:
        ps = pools[spec.name]
        if not ps.faulted:
            t = telemetry.get(spec.name)
            measured_kw = t.power_kw if t is not None else spec.max_kw
            total_kw += measured_kw if measured_kw > ps.target_kw else ps.target_kw
    return total_kw


def _available_kw(spec: PoolSpec, t: PoolTelemetry | None) -> float:
    """What the pool can draw: max_kw, or less when its device reports less (outlet pools are
    bounded by their outlets). The walk's own reading of it, spelt the same way."""
    if t is None or spec.outlet_steps_kw is not None or t.available_kw is None:
        return spec.max_kw
    return t.available_kw if t.available_kw < spec.max_kw else spec.max_kw


def _allowance(spec: PoolSpec, full_kw: float, need_kw: float) -> float:
    """What a kept pool is given: all it can run at, or the part the floor still needs; an
    outlet pool rounds that part up to whole outlets (rounding down would miss the floor)."""
    if need_kw >= full_kw:
        return full_kw
    steps = spec.outlet_steps_kw
    if steps is None:
        return need_kw
    step_kw = steps[min(bisect_left(steps, need_kw - _EPS_KW), len(steps) - 1)]
    return step_kw if step_kw < full_kw else full_kw
