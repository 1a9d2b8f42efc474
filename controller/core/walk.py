"""The walk over the pools in merit order: allocation under the cap, then raises into free room.

Two passes (CONTRACT 7, Confirmation and drift). The first allocates the cap in merit order
(the economics choose below it) and settles every pool that is not raised. The second lets the
raises in, in merit order, only into room that is measured free: the cap binds on the sum over
pools of max(target, measured), so a merit-order swap lowers the worse pool first and raises the
better one once the lowering shows in telemetry. A pool with no telemetry counts at its max_kw.

Unreachable pools (offline, or an mqtt agent silent for `pool_stale_s`) keep their target and
their last load counts against the cap first; when the cap or the economics need one lower, it
is cut at once (`advance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from controller.config import EconomicsConfig
from controller.core.allocate import Budget, allocate_pool, clip_raise
from controller.core.confirm import Command, ConfirmContext, advance
from controller.core.keep import allowances
from controller.core.plan import Snapshot
from controller.core.policies.price import Economics, PriceMode, price_wants_run
from controller.core.site import PoolSpec
from controller.core.state import PoolState
from controller.model import PoolTelemetry

_EPS_KW = 1e-6
_NONE_KEPT: dict[str, float] = {}


class WalkInputs(NamedTuple):
    """What the policies decided before the walk: one object per decision."""

    merit: tuple[PoolSpec, ...]
    hashprice_usd_per_ph_day: float
    mode: PriceMode
    price_usd_per_mwh: float
    economics: EconomicsConfig
    cap_kw: float
    binding: str
    trip_active: bool
    never_raise: bool
    ramp_kw: float  # total increase allowed in this decision (I8)
    unreachable: frozenset[str]
    faulted_kw: float  # measured load of faulted and unreachable pools (I9)
    unexpected_kw: float  # load above target no pending command explains (drift)
    floor_kw: float  # what price must leave running for the active awards (I12; 0: none)
    floor_rrs_kw: float  # its RRS part: kept on ufr pools first
    floor_reason: str  # the reason of a pool kept on for an award ("dispatch:ID")
    confirm: ConfirmContext  # what every pool's advance shares (now, timeout, retained seqs)


@dataclass(slots=True)
class WalkResult:
    pools: dict[str, PoolState]
    target_total_kw: float
    raised: bool  # some pool was raised: the ramp step was used (I8)
    changed: bool
    cap_left_kw: float  # what allocation left under the cap (the cap did not bind when > 0)
    blind: frozenset[str]  # pools still counted at max_kw without telemetry


# A raiser held for the second pass: spec, record, wanted target and outlets, reason, measured
# kW, base kW (max of target and measured) and telemetry. A tuple: one per raiser per decision.
_Raise = tuple[PoolSpec, PoolState, float, int | None, str, float, float, PoolTelemetry | None]


def walk(pools: dict[str, PoolState], snap: Snapshot, w: WalkInputs) -> WalkResult:
    # An award's allowances count on every pool they keep or price runs; a PDU cut the cap
    # cannot lift runs nothing, so the walk is taken again with that pool counted out (rare: a
    # cut pool under an award and a tight cap; at most once per such pool).
    uncounted: frozenset[str] = frozenset()
    while True:
        result = _walk(pools, snap, w, uncounted)
        if isinstance(result, WalkResult):
            return result
        uncounted |= {result}


def _walk(
    pools: dict[str, PoolState], snap: Snapshot, w: WalkInputs, uncounted: frozenset[str]
) -> WalkResult | str:
    """One walk, or the name of a cut pool the floor counted on that the cap cannot lift."""
    budget = Budget(
        remaining_kw=max(0.0, w.cap_kw - w.faulted_kw - w.unexpected_kw),
        ramp_left_kw=w.ramp_kw,
        never_raise=w.never_raise,
    )
    # Unreachable pools are kept, in merit order, while their loads fit under the cap.
    keep_room_kw = w.cap_kw - (w.faulted_kw - _unreachable_kw(pools, snap, w)) - w.unexpected_kw
    # Every pool goes into `out` in merit order as the first pass meets it (a raiser with its
    # old record until the second pass replaces it in place), so `out` is the plan's dict.
    out: dict[str, PoolState] = {}
    raises: list[_Raise] = []
    occupied_kw = 0.0  # sum of max(target, measured) over pools settled in the first pass
    raisers_kw = 0.0  # the same over the raisers, as they are
    telemetry = snap.pools
    ctx = w.confirm
    mode, now = w.mode, ctx.now
    economics = Economics.of(mode, w.price_usd_per_mwh, w.hashprice_usd_per_ph_day, w.economics)
    trip_active, unreachable_pools, binding = w.trip_active, w.unreachable, w.binding
    changed = False
    blind: list[str] = []
    # Pools an award keeps on against price, with what each may run at (empty without one).
    floor = w.floor_kw > 0.0 and mode is not PriceMode.RUN
    kept = allowances(pools, telemetry, w, economics, uncounted) if floor else _NONE_KEPT
    for spec in w.merit:
        name = spec.name
        ps = pools[name]
        t = telemetry.get(name)
        measured_kw = t.power_kw if t is not None else spec.max_kw
        tripped = trip_active and spec.ufr
        unreachable = name in unreachable_pools
        wants = not (tripped or ps.faulted) and price_wants_run(ps, spec, economics, now)
        kept_kw = kept.get(name) if kept and not wants else None
        if kept_kw is not None:
            wants = True
        if unreachable:
            load_kw = measured_kw if measured_kw > ps.target_kw else ps.target_kw
            keep = wants and not tripped and load_kw <= keep_room_kw + _EPS_KW
            if keep:
                keep_room_kw -= load_kw
            target_kw = ps.target_kw if keep else 0.0
            outlets_on = ps.outlets_on if keep else (0 if spec.outlet_steps_kw else None)
            reason = "frequency" if tripped else "safety"
            cmd: Command = (target_kw, reason, outlets_on, False, tripped, True)
            nps = out[name] = advance(ps, spec, cmd, t, ctx)
            if nps is not ps:
                changed = True
            if nps.blind:
                blind.append(name)
            continue  # its load is in faulted_kw already
        # Outlet pools are sized by the cap alone: their outlets bound what they can draw.
        # min(max_kw, reported) spelt out (a builtin call per pool): NaN keeps max_kw, as min().
        reported_kw = t.available_kw if t is not None and spec.outlet_steps_kw is None else None
        available_kw = (
            reported_kw if reported_kw is not None and reported_kw < spec.max_kw else spec.max_kw
        )
        if kept_kw is not None and kept_kw < available_kw:
            available_kw = kept_kw  # kept for an award: no more than the floor needs of it
        # A PDU cut lifts only with room for all the pool can draw (second pass below): under
        # a cap that leaves less, it stays cut, and the room goes to pools that can use it.
        cut_held = (
            ps.cut
            and wants
            and spec.outlet_steps_kw is None
            and budget.remaining_kw < spec.max_kw - _EPS_KW
            and ps.target_kw < available_kw
        )
        if cut_held:
            if floor and name not in uncounted:
                return name
            available_kw = ps.target_kw
        target_kw, outlets_on, cap_limited, ramp_limited = allocate_pool(
            spec, wants, available_kw, ps.target_kw, ps.outlets_on, budget, hold=t is None
        )
        reason = _reason(
            tripped, ps.faulted, wants, available_kw, mode, ramp_limited, cap_limited, binding
        )
        if kept_kw is not None and reason == "price":
            reason = w.floor_reason
        elif cut_held and not (tripped or ps.faulted):
            reason = binding
        if target_kw > ps.target_kw + _EPS_KW:
            base_kw = measured_kw if measured_kw > ps.target_kw else ps.target_kw
            raisers_kw += base_kw
            raises.append((spec, ps, target_kw, outlets_on, reason, measured_kw, base_kw, t))
            out[name] = ps  # its place in merit order; replaced below
            continue
        if not ps.faulted:  # a faulted pool's load is in faulted_kw already
            occupied_kw += target_kw if target_kw > measured_kw else measured_kw
        cmd = (target_kw, reason, outlets_on, ramp_limited, tripped, False)
        nps = out[name] = advance(ps, spec, cmd, t, ctx)
        if nps is not ps:
            changed = True
        if nps.blind:
            blind.append(name)
    raised = False
    if raises:
        # Room measured free: the cap, less faulted load, settled pools and every raiser as it is.
        room_kw = w.cap_kw - w.faulted_kw - occupied_kw
        room_kw -= raisers_kw
        for spec, ps, wanted_kw, wanted_outlets, reason, measured_kw, base_kw, t in raises:
            # Over the cap already (a lowering in flight, drift): no raise at all, not even up
            # to what the pool still measures.
            limit_kw = base_kw + room_kw if room_kw > _EPS_KW else ps.target_kw
            if ps.cut and spec.outlet_steps_kw is None and base_kw + room_kw < spec.max_kw:
                # Lifting a PDU cut energises every outlet: until its agent is seen to obey
                # again, the pool may draw all it can. Only room for that lifts the cut.
                limit_kw = ps.target_kw
            target_kw, outlets_on = clip_raise(
                spec, ps.target_kw, ps.outlets_on, wanted_kw, wanted_outlets, limit_kw
            )
            drawn_kw = spec.max_kw if ps.cut and target_kw > ps.target_kw else measured_kw
            room_kw -= (drawn_kw if drawn_kw > target_kw else target_kw) - base_kw
            held = target_kw < wanted_kw - _EPS_KW
            raised = raised or target_kw > ps.target_kw + _EPS_KW
            cmd = (target_kw, "ramp" if held else reason, outlets_on, held, False, False)
            nps = out[spec.name] = advance(ps, spec, cmd, t, ctx)
            if nps is not ps:
                changed = True
            if nps.blind:
                blind.append(spec.name)
    total_kw = 0.0  # a loop, not sum(): sum() compensates rounding from Python 3.12 on
    for nps in out.values():
        total_kw += nps.target_kw
    return WalkResult(out, total_kw, raised, changed, budget.remaining_kw, frozenset(blind))


def _unreachable_kw(pools: dict[str, PoolState], snap: Snapshot, w: WalkInputs) -> float:
    if not w.unreachable:
        return 0.0
    total = 0.0
    for spec in w.merit:
        if spec.name in w.unreachable:
            t = snap.pools.get(spec.name)
            total += max(t.power_kw if t is not None else spec.max_kw, pools[spec.name].target_kw)
    return total


def _reason(
    tripped: bool,
    faulted: bool,
    wants: bool,
    available_kw: float,
    mode: PriceMode,
    ramp_limited: bool,
    cap_limited: bool,
    binding: str,
) -> str:
    if tripped:
        return "frequency"
    if faulted:
        return "safety"
    if wants and available_kw <= 0.0:
        return "safety"  # the device reports nothing available: not a price decision
    if not wants:
        if mode is PriceMode.RUN:
            return "override"
        return "safety" if mode is PriceMode.CURTAIL else "price"
    if ramp_limited:
        return "ramp"
    if cap_limited:
        return binding
    return "override" if mode is PriceMode.RUN else "price"
