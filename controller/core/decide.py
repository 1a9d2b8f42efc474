"""decide(): the pure heart of curtaild. Every safety invariant of CONTRACT section 4 lives here.

Policies run in a fixed order and each only narrows the mining cap (`Cap.narrow`): safety
envelope -> dispatch obligations -> override -> frequency -> price. The walk then allocates the
cap to the pools in merit order, lets raises only into measured-free room, and `advance` turns
each target into the pool's next command state. No clock, no I/O, no logging: `now` and the
snapshot are all there is.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import Config
from controller.core import seed
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.policies import dispatch, override
from controller.core.policies.envelope import safety_envelope
from controller.core.policies.frequency import update_trip
from controller.core.policies.price import PriceMode
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, Obligation, PoolState
from controller.core.walk import WalkInputs, walk


@dataclass(slots=True)
class Cap:
    """The mining cap and what sets it. It only ever narrows (DESIGN point 2)."""

    kw: float
    binding: str

    def narrow(self, kw: float | None, binding: str) -> None:
        if kw is not None and kw < self.kw:
            self.kw, self.binding = kw, binding


def decide(snap: Snapshot, state: ControllerState, now: float, config: Config) -> Decision:
    site = compile_site(config)
    pools = seed.pools_for(site, state, snap)
    totals = _pool_totals(site, pools, snap, state.started_at, now, config)
    mining_kw = totals.mining_kw
    # A transition lasts at most confirm_timeout_s: a stuck pool must not freeze the estimate.
    held = state.aux_estimate_kw if totals.in_transition else None
    env = safety_envelope(
        config, site, snap.meters_kw, snap.islanded, mining_kw, totals.complete, now, held
    )
    failsafe: set[str] = set()
    cap = Cap(env.envelope_kw, "safety")

    # Dispatch: fold the inbox, expire, compute each cap, progress acks.
    obligations, acks, seen_at = dispatch.take_inbox(
        state.obligations, snap.dispatch_inbox, config, now
    )
    obligations = dispatch.expire(obligations, now)
    non_mining_kw = env.gpu_reserved_kw + env.aux_kw
    progressed: list[Obligation] = []
    for current in obligations:
        ob_cap = dispatch.cap_of(current, config, env.envelope_kw, non_mining_kw, now)
        ob, ack = dispatch.progress(current, ob_cap, mining_kw, now)
        progressed.append(ob)
        if ack is not None:
            acks.append(ack)
        if ob_cap is not None:
            cap.narrow(ob_cap.cap_kw, ob_cap.binding)
    acks = dispatch.fill_acks(acks, progressed, mining_kw)

    never_raise = False
    last_dispatch_at = state.last_dispatch_at
    if seen_at is not None:
        last_dispatch_at = seen_at if last_dispatch_at is None else max(last_dispatch_at, seen_at)
    heartbeat_s = config.feeds.dispatch_heartbeat_s
    if heartbeat_s > 0 and now - (last_dispatch_at or state.started_at) > heartbeat_s:
        failsafe.add("dispatch_stale")
        if config.feeds.on_dispatch_stale == "curtail":
            cap.narrow(0.0, "safety")
        else:
            never_raise = True

    current_override = override.take_inbox(state.override, snap.override_inbox, now)
    cap.narrow(override.override_cap_kw(current_override), "override")

    if env.site_meter_stale:
        failsafe.add("site_meter_stale")
        never_raise = True
    if snap.budget_failsafe:
        failsafe.add("decision_budget")
        never_raise = True

    trip = update_trip(
        state.trip_active,
        state.frequency_ok_since,
        snap.frequency_hz,
        config.dispatch,
        config.control.meter_stale_s,
        now,
    )

    mode, price, price_stale = _price_mode(snap, state, now, config)
    if price_stale:
        failsafe.add("price_stale")
    if mode is PriceMode.CURTAIL:
        cap.narrow(0.0, "safety")
    if current_override is not None and current_override.mode == "run":
        mode = PriceMode.RUN
    if mode is PriceMode.HOLD:
        never_raise = True  # no usable price: nothing justifies more load (CONTRACT 7)

    # I8: raises come in steps of ramp_up_kw_per_s x tick_s, at most once per tick_s. Events
    # between ticks only lower: a burst of telemetry must not become a burst of small raises.
    tick_s = config.control.tick_s
    ramp_kw = 0.0
    if state.last_raise_at is not None and now - state.last_raise_at >= tick_s:
        ramp_kw = config.control.ramp_up_kw_per_s * tick_s
    hashprice = snap.hashprice_usd_per_ph_day or config.economics.hashprice_usd_per_ph_day
    result = walk(
        pools,
        snap,
        WalkInputs(
            merit=site.merit_order(hashprice),
            breakevens=site.breakevens(hashprice),
            mode=mode,
            price_usd_per_mwh=price,
            economics=config.economics,
            cap_kw=cap.kw,
            binding=cap.binding,
            trip_active=trip.active,
            never_raise=never_raise,
            ramp_kw=ramp_kw,
            unreachable=totals.unreachable,
            faulted_kw=totals.faulted_kw,
            unexpected_kw=totals.unexpected_kw,
            cmd_seq=snap.cmd_seq,
            confirm_timeout_s=config.control.confirm_timeout_s,
            now=now,
        ),
    )
    binding = cap.binding
    if result.cap_left_kw > 0 and result.target_total_kw < cap.kw:
        binding = "frequency" if trip.active else "price"
    last_raise_at = now if result.raised or state.last_raise_at is None else state.last_raise_at
    next_state = ControllerState(
        started_at=state.started_at,
        pools=result.pools,
        obligations=tuple(progressed),
        override=current_override,
        trip_active=trip.active,
        frequency_ok_since=trip.ok_since,
        last_decision_at=now,
        last_raise_at=last_raise_at,
        aux_estimate_kw=env.aux_kw,
        last_dispatch_at=last_dispatch_at,
        blind=result.blind,
    )
    plan = Plan(
        at=now,
        price_usd_per_mwh=price if snap.price is not None else None,
        mining_cap_kw=cap.kw,
        binding=binding,
        gpu_reserved_kw=env.gpu_reserved_kw,
        envelope_kw=env.envelope_kw,
        mining_target_kw=result.target_total_kw,
        mining_measured_kw=mining_kw,
        pools=result.pools,
        failsafe=frozenset(failsafe),
    )
    changed = result.changed or bool(acks) or _plan_head_changed(state, next_state)
    return Decision(plan, next_state, (), tuple(acks), changed)


def _price_mode(
    snap: Snapshot, state: ControllerState, now: float, config: Config
) -> tuple[PriceMode, float, bool]:
    """(mode, price, stale). Before the first price it counts as stale once price_stale_s has
    passed since start (CONTRACT 7 Prices)."""
    stale_s = config.feeds.price_stale_s
    if snap.price is None:
        stale = now - state.started_at > stale_s
        price = 0.0
    else:
        stale = now - snap.price.received_at > stale_s
        price = snap.price.price_usd_per_mwh
    if not stale:
        return (PriceMode.ACT if snap.price is not None else PriceMode.HOLD), price, False
    if config.feeds.on_price_stale == "curtail":
        return PriceMode.CURTAIL, price, True
    return PriceMode.HOLD, price, True


@dataclass(frozen=True, slots=True)
class _PoolTotals:
    mining_kw: float  # measured; a pool that has not reported counts at its max_kw
    complete: bool  # every pool has reported
    faulted_kw: float  # I9: measured load of faulted or unreachable pools, off the others' cap
    # Load above target that no command explains (drift: a confirmed pool climbing): the cap
    # binds on max(target, measured), so the others make room for it at once (CONTRACT 7).
    unexpected_kw: float
    unreachable: frozenset[str]
    # A command still unconfirmed within confirm_timeout_s: the site meter leads pool telemetry,
    # so the closed-loop aux estimate is held (a stuck pool must not freeze it for good).
    in_transition: bool


def _pool_totals(
    site: SiteModel,
    pools: dict[str, PoolState],
    snap: Snapshot,
    started_at: float,
    now: float,
    config: Config,
) -> _PoolTotals:
    """One pass over the pools for what the envelope and the cap need before allocation."""
    settle_s = config.control.confirm_timeout_s
    mining_kw = faulted_kw = unexpected_kw = 0.0
    complete = True
    in_transition = False
    unreachable: list[str] = []
    for spec in site.pools:
        ps = pools[spec.name]
        t = snap.pools.get(spec.name)
        if t is None:
            complete = False
            load_kw = spec.max_kw
            # An mqtt agent never heard from since start is as silent as one gone quiet.
            lost = spec.stale_s is not None and now - started_at > spec.stale_s
        else:
            load_kw = t.power_kw
            lost = not t.online or (spec.stale_s is not None and now - t.at > spec.stale_s)
        mining_kw += load_kw
        if lost:
            unreachable.append(spec.name)
            # Nobody can tell it otherwise: it may be drawing its target if not more.
            faulted_kw += load_kw if load_kw > ps.target_kw else ps.target_kw
        elif ps.faulted:
            faulted_kw += load_kw
        elif (
            t is not None
            and t.power_kw > ps.target_kw + spec.tolerance_kw
            and not (ps.lowering and not ps.confirmed)  # a lowering on its way is expected
            and not (spec.outlet_steps_kw is not None and ps.outlets_on is None)  # a measure
        ):
            unexpected_kw += t.power_kw - ps.target_kw
        if not ps.confirmed and now - ps.target_at < settle_s:
            in_transition = True
    return _PoolTotals(
        mining_kw, complete, faulted_kw, unexpected_kw, frozenset(unreachable), in_transition
    )


def _plan_head_changed(old: ControllerState, new: ControllerState) -> bool:
    return (
        old.obligations != new.obligations
        or old.override != new.override
        or old.trip_active != new.trip_active
    )
