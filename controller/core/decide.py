"""decide(): the pure heart of curtaild. Every safety invariant of CONTRACT section 4 lives here.

    seed -> totals -> envelope -> dispatch -> override -> frequency -> price -> walk -> clamp

Pools without a record are seeded (`seed`), and one pass over them gives the measured loads
(`totals`). Then the pipeline: each stage takes the mining cap the previous one left and returns
one no larger (`Cap.narrow`, DESIGN point 2), with what it decided and a `Reason` for each
narrowing or failsafe:

- envelope (safety): POI or backup limit less GPU, aux and margin; a stale site meter or
  decisions over budget stop every raise;
- dispatch: each obligation's cap, acks and shortfall; a stale heartbeat curtails or holds;
- override: `curtail` and `limit` narrow; `run` is read by the price stage;
- frequency: the under-frequency trip of `ufr` pools (the cap itself is kept);
- price: the price mode; a stale price curtails (cap 0, or an award's floor) or holds; override
  `run` ignores it. An active award (policies/award.py) sets a floor price may not curtail
  below: the walk keeps pools on for it (keep.py).

The walk then allocates the cap to the pools in merit order, lets raises only into
measured-free room, and `advance` turns each target into the pool's next command state. The
plan is checked once more before it leaves (`clamp.check_plan`: a violation raises, never
commands). When the walk's inputs are what they were at its last fixed point (no record
changed), its totals and result are reused instead (`memo`: exact, see there). That memo
travels in the state (`ControllerState.memo`): decide() reads it from the state it is given and
returns the next one in the state it returns.

No clock, no I/O, no logging, no hidden state: `now`, the snapshot, the state and the compiled
site are all there is, and nothing reachable from them is changed; the only state change is the
ControllerState returned.
"""

from __future__ import annotations

from controller.core import memo, seed
from controller.core.clamp import check_plan
from controller.core.confirm import ConfirmContext
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.policies import UNBOUNDED, dispatch, envelope, frequency, override, price
from controller.core.policies.award import AwardFloor
from controller.core.site import SiteModel
from controller.core.state import ControllerState
from controller.core.totals import PoolTotals, pool_totals
from controller.core.walk import WalkInputs, WalkResult, walk
from controller.model import OverrideRequest


def decide(snap: Snapshot, state: ControllerState, now: float, site: SiteModel) -> Decision:
    config = site.config
    pools = seed.pools_for(site, state, snap)
    steady = memo.lookup(site, state.memo, pools, snap.pools, now)
    totals = (
        steady.totals
        if steady is not None
        else pool_totals(site, pools, snap, state.started_at, now)
    )

    safe = envelope.stage(UNBOUNDED, site, snap, totals, state.aux_estimate_kw, now)
    env = safe.envelope
    seen_kw = totals.mining_kw - totals.unreported_kw
    obliged = dispatch.stage(
        safe.cap, state, snap.dispatch_inbox, config, env, totals.mining_kw, now, seen_kw
    )
    overridden = override.stage(obliged.cap, state.override, snap.override_inbox, now)
    freq = frequency.stage(overridden.cap, state, snap.frequency_hz, config, now)
    floor = obliged.floor
    priced = price.stage(
        freq.cap, snap.price, state.started_at, overridden.current, config.feeds, floor.kw, now
    )

    cap, trip = priced.cap, freq.trip
    never_raise = safe.never_raise or obliged.never_raise or priced.never_raise
    inputs = _walk_inputs(site, snap, state, totals, priced, floor, trip.active, never_raise, now)
    if steady is not None and memo.same_inputs(steady, inputs):
        result = steady.result
    else:
        steady, result = None, walk(pools, snap, inputs)
    binding = cap.binding
    if result.cap_left_kw > 0 and result.target_total_kw < cap.kw:
        binding = "frequency" if trip.active else "price"

    failsafe = frozenset(safe.failsafe + obliged.failsafe + priced.failsafe)
    plan = _plan(snap, priced, binding, env, totals, result, failsafe, now)
    kept = steady
    if steady is None:  # the memo's plan was checked with these same pools and cap
        check_plan(plan, site)
        kept = memo.remember(site, state.memo, snap.pools, totals, inputs, result, now)
    next_state = _next_state(
        state, result, obliged, overridden.current, trip, env.aux_kw, kept, now
    )
    reasons = safe.reasons + obliged.reasons + overridden.reasons + freq.reasons + priced.reasons
    changed = (
        result.changed
        or bool(obliged.acks)
        or state.obligations != obliged.obligations
        or overridden.changed
        or state.trip_active != trip.active
    )
    return Decision(
        plan, next_state, reasons, obliged.acks, changed, overridden.changed, obliged.shortfall_kw
    )


def _next_state(
    state: ControllerState,
    result: WalkResult,
    obliged: dispatch.DispatchStage,
    current_override: OverrideRequest | None,
    trip: frequency.TripState,
    aux_kw: float,
    steady: memo.SteadyWalk | None,
    now: float,
) -> ControllerState:
    raised = result.raised or state.last_raise_at is None
    return ControllerState(
        started_at=state.started_at,
        pools=result.pools,
        obligations=obliged.obligations,
        override=current_override,
        trip_active=trip.active,
        frequency_ok_since=trip.ok_since,
        last_decision_at=now,
        last_raise_at=now if raised else state.last_raise_at,
        aux_estimate_kw=aux_kw,
        last_dispatch_at=obliged.last_dispatch_at,
        blind=result.blind,
        memo=steady,
    )


def _walk_inputs(
    site: SiteModel,
    snap: Snapshot,
    state: ControllerState,
    totals: PoolTotals,
    priced: price.PriceStage,
    floor: AwardFloor,
    trip_active: bool,
    never_raise: bool,
    now: float,
) -> WalkInputs:
    control = site.config.control
    # I8: raises come in steps of ramp_up_kw_per_s x tick_s, at most once per tick_s. Events
    # between ticks only lower: a burst of telemetry must not become a burst of small raises.
    ramp_kw = 0.0
    if state.last_raise_at is not None and now - state.last_raise_at >= control.tick_s:
        ramp_kw = control.ramp_up_kw_per_s * control.tick_s
    economics = site.config.economics
    hashprice = snap.hashprice_usd_per_ph_day or economics.hashprice_usd_per_ph_day
    return WalkInputs(
        merit=site.merit_order(hashprice),
        hashprice_usd_per_ph_day=hashprice,
        mode=priced.mode,
        price_usd_per_mwh=priced.price_usd_per_mwh,
        economics=economics,
        cap_kw=priced.cap.kw,
        binding=priced.cap.binding,
        trip_active=trip_active,
        never_raise=never_raise,
        ramp_kw=ramp_kw,
        unreachable=totals.unreachable,
        faulted_kw=totals.faulted_kw,
        unexpected_kw=totals.unexpected_kw,
        floor_kw=floor.kw,
        floor_rrs_kw=floor.rrs_kw,
        floor_reason=floor.reason,
        confirm=ConfirmContext(snap.cmd_seq, control.confirm_timeout_s, now),
    )


def _plan(
    snap: Snapshot,
    priced: price.PriceStage,
    binding: str,
    env: envelope.Envelope,
    totals: PoolTotals,
    result: WalkResult,
    failsafe: frozenset[str],
    now: float,
) -> Plan:
    return Plan(
        at=now,
        price_usd_per_mwh=priced.price_usd_per_mwh if snap.price is not None else None,
        mining_cap_kw=priced.cap.kw,
        binding=binding,
        gpu_reserved_kw=env.gpu_reserved_kw,
        envelope_kw=env.envelope_kw,
        mining_target_kw=result.target_total_kw,
        mining_measured_kw=totals.mining_kw,
        pools=result.pools,
        failsafe=failsafe,
    )
