"""Commands, confirmation by telemetry and escalation per pool (CONTRACT 2.4, I9, plan states).

`advance` is the one place a PoolState changes: a new target bumps `seq` and starts the confirm
timer; an unconfirmed lowering escalates to the PDU cut after `confirm_timeout_s` and becomes
`faulted` one more timeout later.
"""

from __future__ import annotations

from controller.core.site import PoolSpec
from controller.core.state import PoolState
from controller.model import PoolTelemetry

_EPS_KW = 1e-6


def advance(
    ps: PoolState,
    spec: PoolSpec,
    target_kw: float,
    reason: str,
    outlets_on: int | None,
    ramp_limited: bool,
    tripped: bool,
    unreachable: bool,
    telemetry: PoolTelemetry | None,
    confirm_timeout_s: float,
    now: float,
) -> PoolState:
    """The pool's next record for the target allocation gave it; `ps` itself when unchanged.

    Called once per pool per decision: it takes plain values (no per-pool object is built).
    """
    if (
        target_kw == ps.target_kw
        and ps.confirmed
        and reason == ps.reason
        and outlets_on == ps.outlets_on
        and not (tripped or unreachable or ramp_limited)
        and not (ps.tripped or ps.faulted or ps.cut)
        and ps.escalated_at is None
        and (target_kw > 0.0) == ps.on
        and ps.state == ("running" if ps.on else "curtailed")
    ):
        return ps  # the steady state: confirmed and unchanged (most pools, most decisions)
    seq, target_at, lowering = ps.seq, ps.target_at, ps.lowering
    confirmed, escalated_at, faulted, cut = ps.confirmed, ps.escalated_at, ps.faulted, ps.cut
    on, changed_at = ps.on, ps.changed_at
    if abs(target_kw - ps.target_kw) > _EPS_KW or (tripped and not ps.tripped):
        seq += 1
        target_at = now
        lowering = target_kw < ps.target_kw or target_kw <= 0.0
        confirmed = False
        if not lowering:  # raising: the hard cut is lifted and the pool gets a fresh start
            escalated_at, faulted, cut = None, False, False
    if (target_kw > 0.0) != on:
        on, changed_at = target_kw > 0.0, now
    if tripped:
        cut = True  # I11: the PDUs of ufr pools are cut at once, no confirm wait

    if not confirmed and telemetry is not None:
        confirmed = _confirmed(spec, target_kw, lowering, seq, escalated_at, telemetry)
        if confirmed:
            faulted = False
    if not confirmed and lowering:
        waited_s = now - target_at
        if escalated_at is None and waited_s >= confirm_timeout_s:
            if spec.has_pdus:
                escalated_at, cut = now, True
            else:
                faulted = True  # no hard-cut path: straight to faulted
        elif escalated_at is not None and now - escalated_at >= confirm_timeout_s:
            faulted = True

    if cut and outlets_on is not None:
        outlets_on = 0
    state = _label(target_kw, tripped, unreachable, ramp_limited, confirmed, lowering,
                   escalated_at, faulted)  # fmt: skip
    candidate = (
        target_kw,
        seq,
        on,
        changed_at,
        target_at,
        lowering,
        confirmed,
        escalated_at,
        faulted,
        cut,
        tripped,
        outlets_on,
        reason,
        state,
    )
    if candidate == (
        ps.target_kw,
        ps.seq,
        ps.on,
        ps.changed_at,
        ps.target_at,
        ps.lowering,
        ps.confirmed,
        ps.escalated_at,
        ps.faulted,
        ps.cut,
        ps.tripped,
        ps.outlets_on,
        ps.reason,
        ps.state,
    ):
        return ps  # unchanged: reuse the record (steady state allocates nothing)
    return PoolState(*candidate)


def _confirmed(
    spec: PoolSpec,
    target_kw: float,
    lowering: bool,
    seq: int,
    escalated_at: float | None,
    t: PoolTelemetry,
) -> bool:
    tol = spec.tolerance_kw
    if lowering:
        # After the PDU cut our own switch did the work: power alone confirms.
        applied = escalated_at is not None or t.applied_seq >= seq
        return applied and t.power_kw <= target_kw + tol
    if spec.outlet_steps_kw is not None:
        # Outlet-switched pool: targets are nominal outlet ratings and miners draw less; a raise
        # is done once the outlets are energised as commanded.
        return t.applied_seq >= seq
    reachable_kw = target_kw if t.available_kw is None else min(target_kw, t.available_kw)
    return t.applied_seq >= seq and t.power_kw >= reachable_kw - tol


def _label(
    target_kw: float,
    tripped: bool,
    unreachable: bool,
    ramp_limited: bool,
    confirmed: bool,
    lowering: bool,
    escalated_at: float | None,
    faulted: bool,
) -> str:
    if tripped:
        return "tripped"
    if faulted or unreachable:
        return "faulted"
    if escalated_at is not None:
        return "escalated"
    if target_kw <= 0.0:
        return "curtailed"
    if ramp_limited or (not confirmed and not lowering):
        return "ramping"
    return "running"
