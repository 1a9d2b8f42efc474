"""decide(): the pure heart of curtaild. Every safety invariant of CONTRACT section 4 lives here.

Policies run in a fixed order and each only narrows the mining cap: safety envelope ->
dispatch obligations -> override -> frequency -> price. Allocation then walks the pools in merit
order under the cap, staggering increases, and `advance` turns each target into the pool's next
command state. No clock, no I/O, no logging: `now` and the snapshot are all there is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.config import Config
from controller.core.allocate import Budget, allocate_pool
from controller.core.confirm import advance
from controller.core.plan import Decision, DispatchAck, Plan, Snapshot
from controller.core.policies import dispatch, override
from controller.core.policies.envelope import safety_envelope
from controller.core.policies.frequency import update_trip
from controller.core.policies.price import PriceMode, price_wants_run
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, Obligation, PoolState


def decide(snap: Snapshot, state: ControllerState, now: float, config: Config) -> Decision:
    site = compile_site(config)
    pools = state.pools
    if pools.keys() != site.by_name.keys():  # first decision, or a reload added/renamed pools
        pools = _seed_pools(site, state, snap)
    totals = _pool_totals(site, pools, snap, now, config.control.confirm_timeout_s)
    mining_kw, complete = totals.mining_kw, totals.complete
    # A transition lasts at most confirm_timeout_s: a stuck pool must not freeze the estimate.
    held = state.aux_estimate_kw if totals.in_transition else None
    env = safety_envelope(
        config, site, snap.meters_kw, snap.islanded, mining_kw, complete, now, held
    )
    failsafe: set[str] = set()
    reasons: list[str] = []

    # Dispatch: fold the inbox, expire, compute each cap, progress acks.
    obligations, acks, seen_at = dispatch.take_inbox(
        state.obligations, snap.dispatch_inbox, config, now
    )
    obligations = dispatch.expire(obligations, now)
    cap_kw, binding = env.envelope_kw, "safety"
    non_mining_kw = env.gpu_reserved_kw + env.aux_kw
    progressed: list[Obligation] = []
    for current in obligations:
        cap = dispatch.cap_of(current, config, env.envelope_kw, non_mining_kw, now)
        ob, ack = dispatch.progress(current, cap, mining_kw, now)
        progressed.append(ob)
        if ack is not None:
            acks.append(ack)
        if cap is not None and cap.cap_kw < cap_kw:
            cap_kw, binding = cap.cap_kw, cap.binding
    acks = _fill_accepted(acks, progressed, mining_kw)

    never_raise = False
    last_dispatch_at = state.last_dispatch_at
    if seen_at is not None:
        last_dispatch_at = seen_at if last_dispatch_at is None else max(last_dispatch_at, seen_at)
    heartbeat_s = config.feeds.dispatch_heartbeat_s
    if heartbeat_s > 0 and now - (last_dispatch_at or state.started_at) > heartbeat_s:
        failsafe.add("dispatch_stale")
        if config.feeds.on_dispatch_stale == "curtail":
            cap_kw, binding = 0.0, "safety"
        else:
            never_raise = True

    current_override = override.take_inbox(state.override, snap.override_inbox, now)
    override_kw = override.override_cap_kw(current_override)
    if override_kw is not None and override_kw < cap_kw:
        cap_kw, binding = override_kw, "override"

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

    mode, price = _price_mode(snap, state, now, config)
    if mode is PriceMode.CURTAIL:
        failsafe.add("price_stale")
        cap_kw, binding = 0.0, "safety"
    elif mode is PriceMode.HOLD and snap.price is not None:
        failsafe.add("price_stale")
    if current_override is not None and current_override.mode == "run":
        mode = PriceMode.RUN

    # I8: raises come in steps of ramp_up_kw_per_s x tick_s, at most once per tick_s. Events
    # between ticks only lower: a burst of telemetry must not become a burst of small raises.
    tick_s = config.control.tick_s
    ramp_kw = 0.0
    if state.last_raise_at is not None and now - state.last_raise_at >= tick_s:
        ramp_kw = config.control.ramp_up_kw_per_s * tick_s
    budget = Budget(
        remaining_kw=max(0.0, cap_kw - totals.faulted_kw),
        ramp_left_kw=ramp_kw,
        never_raise=never_raise,
    )
    hashprice = snap.hashprice_usd_per_ph_day or config.economics.hashprice_usd_per_ph_day
    timeout_s = config.control.confirm_timeout_s
    next_pools: dict[str, PoolState] = {}
    target_total_kw = 0.0
    changed = False
    breakevens = site.breakevens(hashprice)
    econ = config.economics
    telemetry = snap.pools
    for spec in site.merit_order(hashprice):
        name = spec.name
        ps = pools[name]
        t = telemetry.get(name)
        unreachable = t is not None and not t.online
        tripped = trip.active and spec.ufr
        if tripped or ps.faulted or unreachable:
            wants = False
        else:
            wants = price_wants_run(ps, breakevens[name], mode, price, econ, now)
        available_kw = spec.max_kw
        # Outlet pools are sized by the cap alone: their outlets bound what they can draw.
        if t is not None and t.available_kw is not None and spec.outlet_steps_kw is None:
            available_kw = min(available_kw, t.available_kw)
        target_kw, outlets_on, cap_limited, ramp_limited = allocate_pool(
            spec, wants, available_kw, ps.target_kw, ps.outlets_on, budget
        )
        if tripped:
            reason = "frequency"
        elif ps.faulted or unreachable:
            reason = "safety"
        elif wants and available_kw <= 0.0:
            reason = "safety"  # the device reports nothing available: not a price decision
        elif not wants:
            reason = "override" if mode is PriceMode.RUN else _price_reason(mode)
        elif ramp_limited:
            reason = "ramp"
        elif cap_limited:
            reason = binding
        else:
            reason = "override" if mode is PriceMode.RUN else "price"
        nps = advance(ps, spec, target_kw, reason, outlets_on, ramp_limited, tripped,
                      unreachable, t, timeout_s, now)  # fmt: skip
        next_pools[name] = nps
        target_total_kw += nps.target_kw
        changed = changed or nps is not ps

    if budget.remaining_kw > 0 and target_total_kw < cap_kw:
        binding = "frequency" if trip.active else "price"
    raised = budget.ramp_left_kw < ramp_kw
    last_raise_at = now if raised or state.last_raise_at is None else state.last_raise_at
    next_state = ControllerState(
        started_at=state.started_at,
        pools=next_pools,
        obligations=tuple(progressed),
        override=current_override,
        trip_active=trip.active,
        frequency_ok_since=trip.ok_since,
        last_decision_at=now,
        last_raise_at=last_raise_at,
        aux_estimate_kw=env.aux_kw,
        last_dispatch_at=last_dispatch_at,
        initialised=True,
    )
    plan = Plan(
        at=now,
        price_usd_per_mwh=price if snap.price is not None else None,
        mining_cap_kw=cap_kw,
        binding=binding,
        gpu_reserved_kw=env.gpu_reserved_kw,
        envelope_kw=env.envelope_kw,
        mining_target_kw=target_total_kw,
        mining_measured_kw=mining_kw,
        pools=next_pools,
        failsafe=frozenset(failsafe),
    )
    changed = changed or bool(acks) or _plan_head_changed(state, next_state)
    return Decision(plan, next_state, tuple(reasons), tuple(acks), changed)


def _price_mode(
    snap: Snapshot, state: ControllerState, now: float, config: Config
) -> tuple[PriceMode, float]:
    stale_s = config.feeds.price_stale_s
    if snap.price is None:
        stale = now - state.started_at > stale_s
        price = 0.0
    else:
        stale = now - snap.price.received_at > stale_s
        price = snap.price.price_usd_per_mwh
    if not stale:
        return (PriceMode.ACT if snap.price is not None else PriceMode.HOLD), price
    if config.feeds.on_price_stale == "curtail":
        return PriceMode.CURTAIL, price
    return PriceMode.HOLD, price


def _price_reason(mode: PriceMode) -> str:
    return "safety" if mode is PriceMode.CURTAIL else "price"


@dataclass(frozen=True, slots=True)
class _PoolTotals:
    mining_kw: float  # measured, over the pools that reported
    complete: bool  # every pool has reported
    faulted_kw: float  # I9: measured load of faulted or unreachable pools, off the others' cap
    # A command still unconfirmed within confirm_timeout_s: the site meter leads pool telemetry,
    # so the closed-loop aux estimate is held (a stuck pool must not freeze it for good).
    in_transition: bool


def _pool_totals(
    site: SiteModel, pools: dict[str, PoolState], snap: Snapshot, now: float, settle_s: float
) -> _PoolTotals:
    """One pass over the pools for what the envelope and the cap need before allocation."""
    mining_kw = faulted_kw = 0.0
    complete = True
    in_transition = False
    for spec in site.pools:
        ps = pools[spec.name]
        t = snap.pools.get(spec.name)
        if t is None:
            complete = False
        else:
            mining_kw += t.power_kw
            if ps.faulted or not t.online:
                faulted_kw += t.power_kw
        if not ps.confirmed and now - ps.target_at < settle_s:
            in_transition = True
    return _PoolTotals(mining_kw, complete, faulted_kw, in_transition)


def _seed_pools(site: SiteModel, state: ControllerState, snap: Snapshot) -> dict[str, PoolState]:
    """Pools without a record (first decision, or added by a reload) start from telemetry.

    A pool drawing power counts as running so that a restart leaves it as it is (I6); a pool
    never heard from counts as curtailed at 0 kW.
    """
    seeded: dict[str, PoolState] = {}
    for spec in site.pools:
        ps = state.pools.get(spec.name)
        if ps is None:
            t = snap.pools.get(spec.name)
            power_kw = t.power_kw if t is not None else 0.0
            running = power_kw > spec.tolerance_kw
            # Outlet pools: which outlets are on is unknown until decide() commands them
            # (outlets_on None); the applier leaves them as they are until then (I6).
            ps = PoolState(
                target_kw=power_kw if running else 0.0,
                seq=max(t.applied_seq if t is not None else 0, snap.cmd_seq.get(spec.name, 0)),
                on=running,
                outlets_on=None if running or spec.outlet_steps_kw is None else 0,
                state="running" if running else "curtailed",
            )
        seeded[spec.name] = ps
    return seeded


def _fill_accepted(
    acks: list[DispatchAck], obligations: list[Obligation], mining_kw: float
) -> list[DispatchAck]:
    caps = {o.instruction.id: o.cap_kw for o in obligations}
    return [
        replace(a, target_kw=caps.get(a.id), measured_kw=mining_kw)
        if a.status == "accepted" and a.target_kw is None and a.id in caps
        else a
        for a in acks
    ]


def _plan_head_changed(old: ControllerState, new: ControllerState) -> bool:
    return (
        old.obligations != new.obligations
        or old.override != new.override
        or old.trip_active != new.trip_active
    )
