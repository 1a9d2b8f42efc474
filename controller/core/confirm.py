"""Commands, confirmation by telemetry, drift and escalation per pool (CONTRACT 2.4, I9, 7).

`advance` is the one place a PoolState changes: a new target bumps `seq` (above every seq the
device or our retained cmd has shown) and starts the confirm timer; an unconfirmed lowering
escalates to the PDU cut after `confirm_timeout_s` and becomes `faulted` one more timeout later.
A confirmed pool whose power climbs above its target is re-commanded at once (drift), and an
unreachable pool that must come down is cut at once: there is nobody to tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from controller.core.allocate import round_to_outlets
from controller.core.site import PoolSpec
from controller.core.state import NEVER, PoolState, new_pool_state
from controller.model import PoolTelemetry

_EPS_KW = 1e-6


# What the walk asks of one pool in this decision: target_kw, reason, outlets_on, then three
# flags: ramp_limited (held below what allocation wanted, I8), tripped (a `ufr` pool under a
# frequency trip, I11) and unreachable (offline, or an mqtt agent silent for pool_stale_s).
# A plain tuple, unpacked by name in `advance`: one is built per pool per decision, and a
# NamedTuple or a dataclass costs 4-5 times more to build (0.2 us a pool, about a tenth of a
# steady 1,000-pool decision).
Command = tuple[float, str, int | None, bool, bool, bool]


class ConfirmContext(NamedTuple):
    """What every pool's `advance` shares in one decision."""

    cmd_seq: Mapping[str, int]  # our own retained cmd per pool, read back at start
    confirm_timeout_s: float
    now: float


def advance(
    ps: PoolState,
    spec: PoolSpec,
    cmd: Command,
    telemetry: PoolTelemetry | None,
    ctx: ConfirmContext,
) -> PoolState:
    """The pool's next record for the command the walk gave it; `ps` itself when unchanged.

    A new command goes out above every seq known elsewhere (the agent's applied seq, our
    retained cmd), so that the agent never ignores it.
    """
    t = telemetry
    target_kw, reason, outlets_on, ramp_limited, tripped, unreachable = cmd
    # An outlet pool whose outlets were never commanded has a measured load for a target, not a
    # command: miners wander around it, and there is nothing of ours to repeat (no drift).
    measured_target = spec.outlet_steps_kw is not None and ps.outlets_on is None
    climbing = (
        t is not None
        and not unreachable
        and not measured_target
        and t.power_kw > target_kw + spec.tolerance_kw
    )
    # The steady state (most pools, most decisions): nothing to do, the record is kept. Written
    # out rather than as a tuple comparison and a helper: those cost 0.3 us a pool, an eighth
    # of a steady 1,000-pool decision.
    if (
        # The walk repeats the record's own command, with no flag, and the pool does not climb;
        target_kw == ps.target_kw
        and reason == ps.reason
        and outlets_on == ps.outlets_on
        and not (ramp_limited or tripped or unreachable or climbing)
        # and the record is at rest: confirmed, nothing pending or cut, and labelled so.
        and ps.confirmed
        and not (ps.tripped or ps.faulted or ps.cut or ps.blind)
        and ps.escalated_at is None
        and (target_kw > 0.0) == ps.on
        and ps.state == ("running" if ps.on else "curtailed")
    ):
        return ps
    now = ctx.now
    seq, target_at, lowering = ps.seq, ps.target_at, ps.lowering
    confirmed, escalated_at, faulted, cut = ps.confirmed, ps.escalated_at, ps.faulted, ps.cut
    on, changed_at, blind = ps.on, ps.changed_at, ps.blind
    delta_kw = target_kw - ps.target_kw  # abs() spelt out: a builtin call per changed pool
    moved = delta_kw > _EPS_KW or delta_kw < -_EPS_KW
    # Drift: above a target it was confirmed at (or was being raised to). A lowering still
    # pending is not drift: its own timer runs.
    drift = climbing and not moved and (confirmed or not lowering)
    if moved or drift or (tripped and not ps.tripped):
        applied_seq = t.applied_seq if t is not None else 0
        retained_seq = ctx.cmd_seq.get(spec.name, 0)
        min_seq = applied_seq if applied_seq > retained_seq else retained_seq
        seq = (seq if seq > min_seq else min_seq) + 1
        lowers = target_kw < ps.target_kw - _EPS_KW or target_kw <= 0.0 or drift
        # A further lowering before the last one was confirmed keeps the timer running: a
        # staggered lowering must not postpone the escalation of a pool that does not move.
        if not (lowers and lowering and not confirmed and target_at != NEVER):
            target_at = now
        lowering, confirmed, blind = lowers, False, False
        if outlets_on is None and spec.outlet_steps_kw is not None:
            # A command to an outlet pool names its outlets, even one re-sent unchanged (drift
            # of a pool seeded at a measured, not whole-outlet, load: rounded down).
            target_kw, outlets_on = round_to_outlets(spec.outlet_steps_kw, target_kw)
        if not lowering:  # raising: the hard cut is lifted and the pool gets a fresh start
            escalated_at, faulted, cut = None, False, False
        elif drift and escalated_at is not None:
            escalated_at = now  # climbed again after its cut: cut again, a fresh escalation
    if (target_kw > 0.0) != on:
        on, changed_at = target_kw > 0.0, now
    if tripped:
        cut = True  # I11: the PDUs of ufr pools are cut at once, no confirm wait

    if not confirmed and t is not None and not unreachable:
        confirmed = _confirmed(spec, target_kw, lowering, seq, escalated_at, t)
        if confirmed:
            faulted = False
    if not confirmed and lowering:
        # A hard-cut path exists for a setpoint pool behind PDUs; an outlet pool's own command
        # is already its outlets, so a cut would change nothing: it goes straight to faulted.
        cuttable = spec.has_pdus and spec.outlet_steps_kw is None
        if unreachable and escalated_at is None and cuttable:
            escalated_at, cut = now, True  # no agent to tell: cut at once (CONTRACT 7)
        elif escalated_at is None and now - target_at >= ctx.confirm_timeout_s:
            if cuttable:
                escalated_at, cut = now, True
            else:
                faulted = True  # no hard-cut path: straight to faulted
        elif escalated_at is not None and now - escalated_at >= ctx.confirm_timeout_s:
            faulted = True

    if cut and outlets_on is not None:
        outlets_on = 0
    state = _label(target_kw, tripped, unreachable, ramp_limited, confirmed, escalated_at, faulted)
    candidate = new_pool_state(
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
        blind,
    )
    if seq != ps.seq or target_kw != ps.target_kw or state != ps.state:
        return candidate  # changed for sure: skip the field-by-field comparison
    return ps if candidate == ps else candidate  # unchanged: keep the record (identity)


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
    # min(target_kw, available_kw) spelt out (a builtin call per confirming pool), NaN included
    available_kw = t.available_kw
    reachable_kw = (
        available_kw if available_kw is not None and available_kw < target_kw else target_kw
    )
    return t.applied_seq >= seq and t.power_kw >= reachable_kw - tol


def _label(
    target_kw: float,
    tripped: bool,
    unreachable: bool,
    ramp_limited: bool,
    confirmed: bool,
    escalated_at: float | None,
    faulted: bool,
) -> str:
    """Plan states (CONTRACT 7): `curtailed` and `running` only once confirmed."""
    if tripped:
        return "tripped"
    if faulted or unreachable:
        return "faulted"
    if escalated_at is not None:
        return "escalated"
    if ramp_limited or not confirmed:
        return "ramping"
    return "curtailed" if target_kw <= 0.0 else "running"
