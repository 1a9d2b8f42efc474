"""Dispatch obligations (CONTRACT 2.2, section 7 Dispatch; I4, I5): lifecycle, caps and acks.

The second stage of the pipeline: every active obligation narrows the cap, and a dispatch
heartbeat gone stale either curtails or stops every raise (failsafe `dispatch_stale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

from controller.config import Config
from controller.core.plan import DispatchAck, Reason
from controller.core.policies import Cap, award
from controller.core.policies.envelope import Envelope
from controller.core.state import ControllerState, Obligation
from controller.model import REDUCTION_TYPES, DispatchInstruction, DispatchType

EEA_ID = "EEA"
# Ack reasons the QSE gateway can act on (CONTRACT 7 Dispatch ids).
ID_CONFLICT = "id_conflict"  # the id is active with another type: rejected, the active one stays
RESEND = "resend"  # the id is active with this type: answered with its current status
# Measured mining within this of a target counts as at it: meters and agents report floats.
COMPLY_TOLERANCE_KW = 1.0


@dataclass(frozen=True, slots=True)
class DispatchCap:
    cap_kw: float
    binding: str  # "dispatch:ID", "eea" or "4cp"


class DispatchStage(NamedTuple):
    cap: Cap
    obligations: tuple[Obligation, ...]
    acks: tuple[DispatchAck, ...]
    last_dispatch_at: float | None  # the heartbeat clock
    shortfall_kw: float  # the largest `missing_kw` over obligations in shortfall
    floor: award.AwardFloor  # what price must leave running for the active awards (I12)
    failsafe: tuple[str, ...]
    never_raise: bool
    reasons: tuple[Reason, ...]


def stage(
    cap: Cap,
    state: ControllerState,
    inbox: tuple[DispatchInstruction, ...],
    config: Config,
    env: Envelope,
    mining_kw: float,
    now: float,
    seen_kw: float,
) -> DispatchStage:
    """Fold the inbox, expire, narrow the cap to each obligation's, progress the acks; then the
    heartbeat. `mining_kw`: measured mining, what compliance is judged on (a pool not heard
    from at its max_kw); `seen_kw`: the same without those pools, what an award's floor is
    judged on."""
    obligations, acks, seen_at = take_inbox(state.obligations, inbox, config, now)
    obligations = expire(obligations, now)
    non_mining_kw = env.gpu_reserved_kw + env.aux_kw
    progressed: list[Obligation] = []
    shortfall_kw = 0.0
    narrowed, binding_ob = cap, None
    deployed_cap_kw = math.inf  # the least cap of an active reduction deployment (I5)
    for current in obligations:
        if current.instruction.type is DispatchType.AWARD:
            progressed.append(current)  # no cap: settled below, once the deployments are known
            continue
        ob_cap = cap_of(current, config, env.envelope_kw, non_mining_kw, now)
        if ob_cap is not None and current.instruction.type in REDUCTION_TYPES:
            deployed_cap_kw = min(deployed_cap_kw, ob_cap.cap_kw)
        ob, ack = progress(current, ob_cap, mining_kw, now)
        progressed.append(ob)
        if ack is not None:
            acks.append(ack)
        if ob_cap is not None:
            lower = narrowed.narrow(ob_cap.cap_kw, ob_cap.binding)
            if lower is not narrowed:
                narrowed, binding_ob = lower, ob
        if ob.status == "shortfall":
            shortfall_kw = max(shortfall_kw, missing_kw(ob, mining_kw))
    awards = award.settle(tuple(progressed), deployed_cap_kw, seen_kw, config.control, now)
    acks.extend(awards.acks)
    shortfall_kw = max(shortfall_kw, awards.shortfall_kw)
    acks = fill_acks(acks, list(awards.obligations), mining_kw, seen_kw)
    reasons: tuple[Reason, ...] = ()
    if binding_ob is not None:
        reasons = (Reason("dispatch", narrowed.kw, _caps(binding_ob)),)
    reasons += awards.reasons

    last_at = state.last_dispatch_at
    if seen_at is not None:
        last_at = seen_at if last_at is None else max(last_at, seen_at)
    heartbeat_s = config.feeds.dispatch_heartbeat_s
    stale_s = now - (last_at or state.started_at)
    failsafe: tuple[str, ...] = ()
    never_raise = False
    if heartbeat_s > 0 and stale_s > heartbeat_s:
        failsafe = ("dispatch_stale",)
        detail = f"dispatch_stale: no dispatch message for {stale_s:.0f} s"
        if config.feeds.on_dispatch_stale == "curtail":
            lower = narrowed.narrow(0.0, "safety")
            cap_kw = lower.kw if lower is not narrowed else None
            narrowed = lower
            reasons += (Reason("failsafe", cap_kw, f"{detail}; mining is curtailed"),)
        else:
            never_raise = True
            reasons += (Reason("failsafe", None, f"{detail}; no pool is raised"),)
    return DispatchStage(
        narrowed,
        awards.obligations,
        tuple(acks),
        last_at,
        shortfall_kw,
        awards.floor,
        failsafe,
        never_raise,
        reasons,
    )


def _caps(ob: Obligation) -> str:
    """Which obligation caps mining (the figure is the reason's cap_kw)."""
    msg = ob.instruction
    if msg.type is DispatchType.EEA:
        return f"EEA level {msg.level or 3} caps mining"
    return f"{msg.type.value} {ob.id} caps mining"


def missing_kw(ob: Obligation, mining_measured_kw: float) -> float:
    """What a shortfall misses: above the cap now, or more than was running to shed (I5)."""
    msg = ob.instruction
    impossible_kw = 0.0
    if msg.type in REDUCTION_TYPES:
        impossible_kw = (msg.mw or 0.0) * 1000.0 - msg.mining_kw_at_receipt
    return max(0.0, mining_measured_kw - ob.cap_kw, impossible_kw)


def take_inbox(
    obligations: tuple[Obligation, ...],
    inbox: tuple[DispatchInstruction, ...],
    config: Config,
    now: float,
) -> tuple[tuple[Obligation, ...], list[DispatchAck], float | None]:
    """Fold new instructions into the obligations; return acks and the newest arrival time."""
    if not inbox:
        return obligations, [], None  # most decisions: nothing new, the same tuple
    # The EEA state is keyed apart from instruction ids: a QSE id "EEA" must not collide with it.
    obs: dict[tuple[str, str], Obligation] = {
        _key(o.instruction.type, o.id): o for o in obligations
    }
    acks: list[DispatchAck] = []
    last_seen: float | None = None
    for received in inbox:
        msg = received
        last_seen = msg.received_at if last_seen is None else max(last_seen, msg.received_at)
        if msg.type is DispatchType.HEARTBEAT:
            continue
        if msg.type is DispatchType.RECALL:
            target = msg.recall_id or ""
            if obs.pop(("id", target), None) is None:
                acks.append(_ack(msg.id, "rejected", f"no active obligation {target!r}", now))
            else:
                acks.append(_ack(msg.id, "accepted", f"recalled {target}", now))
            continue
        if msg.type is DispatchType.EEA and not msg.level:
            obs.pop(_key(msg.type, EEA_ID), None)
            acks.append(_ack(msg.id, "accepted", "EEA cleared", now))
            continue
        key = _key(msg.type, msg.id)
        previous = obs.get(key)
        if previous is not None and key[0] == "id":
            if previous.instruction.type is msg.type:
                # A resend (a gateway retry): answered again with how it stands; the level it
                # was first measured from, its deadline and its status stay (I5, CONTRACT 7).
                acks.append(_ack(msg.id, previous.status, RESEND, now))
            else:
                acks.append(_ack(msg.id, "rejected", ID_CONFLICT, now))
            continue
        start = msg.start if msg.start is not None else msg.notified_at
        # "At once" still allows the confirm window before a shortfall is declared.
        grace_s = max(msg.deadline_s, config.control.confirm_timeout_s)
        listed_id = EEA_ID if msg.type is DispatchType.EEA else msg.id
        deadline = start + grace_s
        if msg.type is DispatchType.AWARD and msg.end is not None:
            deadline = msg.end  # listed as the award's end (CONTRACT 2.2); see award.settle
        obs[key] = Obligation(id=listed_id, instruction=msg, deadline=deadline)
        acks.append(_ack(msg.id, "accepted", "", now))
    return tuple(obs.values()), acks, last_seen


def _key(kind: DispatchType, msg_id: str) -> tuple[str, str]:
    return ("eea", "") if kind is DispatchType.EEA else ("id", msg_id)


def expire(obligations: tuple[Obligation, ...], now: float) -> tuple[Obligation, ...]:
    """An obligation ends at its `end` (RECALL is handled on arrival)."""
    for o in obligations:  # most decisions: none ends, the same tuple (no generator built)
        end = o.instruction.end
        if end is not None and not now < end:
            break
    else:
        return obligations
    return tuple(o for o in obligations if o.instruction.end is None or now < o.instruction.end)


def cap_of(
    ob: Obligation, config: Config, envelope_kw: float, non_mining_kw: float, now: float
) -> DispatchCap | None:
    """The mining cap an obligation imposes now, or None when it does not bind yet."""
    msg = ob.instruction
    start = msg.start if msg.start is not None else msg.notified_at
    label = f"dispatch:{msg.id}"
    if msg.type is DispatchType.EEA:
        fractions = {1: config.dispatch.eea1_fraction, 2: config.dispatch.eea2_fraction}
        fraction = fractions.get(msg.level or 3, config.dispatch.eea3_fraction)
        return DispatchCap(fraction * envelope_kw, "eea")
    if now < start:
        return None
    mw_kw = (msg.mw or 0.0) * 1000.0
    if msg.type in REDUCTION_TYPES:
        return DispatchCap(max(0.0, msg.mining_kw_at_receipt - mw_kw), label)
    if msg.type is DispatchType.CLR:
        return DispatchCap(mw_kw, label)
    if msg.type is DispatchType.LIMIT:
        # Site import at or under mw minus margin: mining gets what GPU and aux leave.
        return DispatchCap(max(0.0, mw_kw - config.site.margin_kw - non_mining_kw), label)
    if msg.type is DispatchType.FOUR_CP:
        return DispatchCap(0.0, "4cp")
    return None


def progress(
    ob: Obligation, cap: DispatchCap | None, mining_measured_kw: float, now: float
) -> tuple[Obligation, DispatchAck | None]:
    """complied once measured mining is at or under the cap; shortfall past the deadline."""
    if cap is None:
        return ob, None
    cap_kw = cap.cap_kw
    msg = ob.instruction
    impossible_kw = 0.0
    if msg.type in REDUCTION_TYPES:
        # Asked to shed more than was running: the missing part can never be delivered.
        impossible_kw = (msg.mw or 0.0) * 1000.0 - msg.mining_kw_at_receipt
    at_or_under = mining_measured_kw <= cap_kw + COMPLY_TOLERANCE_KW
    if ob.status in ("accepted", "shortfall") and at_or_under and impossible_kw <= 0:
        done = replace(ob, status="complied", cap_kw=cap_kw)
        return done, DispatchAck(msg.id, "complied", "", cap_kw, mining_measured_kw, now)
    if ob.status == "accepted" and (impossible_kw > 0 or (not at_or_under and now >= ob.deadline)):
        missing_kw = impossible_kw if impossible_kw > 0 else mining_measured_kw - cap_kw
        short = replace(ob, status="shortfall", cap_kw=cap_kw)
        reason = f"missing {missing_kw:.1f} kW"
        return short, DispatchAck(msg.id, "shortfall", reason, cap_kw, mining_measured_kw, now)
    if not math.isclose(ob.cap_kw, cap_kw):
        return replace(ob, cap_kw=cap_kw), None
    return ob, None


def fill_acks(
    acks: list[DispatchAck],
    obligations: list[Obligation],
    mining_kw: float,
    held_kw: float,
) -> list[DispatchAck]:
    """Give the acks of this decision's new and resent instructions their cap and measured load;
    a resent shortfall says again what it misses."""
    if not acks:
        return acks
    by_id = {o.instruction.id: o for o in obligations}
    return [_filled(ack, by_id.get(ack.id), mining_kw, held_kw) for ack in acks]


def _filled(
    ack: DispatchAck, ob: Obligation | None, mining_kw: float, held_kw: float
) -> DispatchAck:
    if ack.target_kw is not None or ob is None or ack.status == "rejected":
        return ack  # acks of progress() carry their figures already
    reason = ack.reason
    if award.is_award(ob):  # an award's target is the load it holds, not a cap
        if ack.status == "shortfall":
            reason = f"missing {max(0.0, ob.floor_kw - held_kw):.1f} kW"
        return replace(ack, target_kw=ob.floor_kw, measured_kw=held_kw, reason=reason)
    if ack.status == "shortfall":
        reason = f"missing {max(0.0, mining_kw - ob.cap_kw):.1f} kW"
    return replace(ack, target_kw=ob.cap_kw, measured_kw=mining_kw, reason=reason)


def _ack(msg_id: str, status: str, reason: str, now: float) -> DispatchAck:
    return DispatchAck(msg_id, status, reason, None, None, now)  # type: ignore[arg-type]
