"""Ancillary-service awards (CONTRACT 2.2 AWARD, I12): the floor price may not curtail below.

A load resource awarded RRS, ECRS or Non-Spin is paid to hold load ready to drop. While an
award is active ([start, end)), the price policy keeps at least its MW of mining running; the
walk chooses which pools (controller/core/keep.py). Every other limit still narrows: when they
leave less than the floor running the award is acked `shortfall` with the missing kW, and
`complied` again once the load is back.

A reduction deployment (RRS, ECRS, NSRS, ERS) is what an award is for: while one is active the
floor owed is at most its cap (I5), so the load it sheds is not a shortfall. Several awards
share one floor (their sum); a shortfall is shared among them pro rata.

At an award's start the floor may have to be brought on at `ramp_up_kw_per_s` (I8): it is not
a shortfall before `confirm_timeout_s` + floor / ramp has passed since the start.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

from controller.config import ControlConfig
from controller.core.plan import DispatchAck, Reason
from controller.core.state import Obligation
from controller.model import DispatchInstruction, DispatchType

# Measured mining within this share of the floor counts as holding it: the same 2% a pool's
# confirmation allows (CONTRACT 2.4), since the floor is met by pools at their targets.
HOLD_TOLERANCE = 0.02
MIN_TOLERANCE_KW = 1.0


class AwardFloor(NamedTuple):
    """What the price policy must leave running (after deployments; 0: no award active)."""

    kw: float
    rrs_kw: float  # the RRS part: kept on `ufr` pools first
    reason: str  # the plan reason of a pool kept on for it: "dispatch:ID" of the first award


NO_FLOOR = AwardFloor(0.0, 0.0, "")


class AwardStage(NamedTuple):
    obligations: tuple[Obligation, ...]
    floor: AwardFloor
    acks: tuple[DispatchAck, ...]
    shortfall_kw: float  # what the awards miss together (0: none is short)
    reasons: tuple[Reason, ...]


def is_award(ob: Obligation) -> bool:
    return ob.instruction.type is DispatchType.AWARD


def is_active(msg: DispatchInstruction, now: float) -> bool:
    start = msg.start if msg.start is not None else msg.notified_at
    return start <= now and (msg.end is None or now < msg.end)


def award_kw(msg: DispatchInstruction) -> float:
    return (msg.mw or 0.0) * 1000.0


def settle(
    obligations: tuple[Obligation, ...],
    deployed_cap_kw: float,
    mining_kw: float,
    control: ControlConfig,
    now: float,
) -> AwardStage:
    """The floor of the active awards and each award's status. `deployed_cap_kw`: the least cap
    of an active reduction deployment (inf: none); `mining_kw`: measured mining."""
    active = [ob for ob in obligations if is_award(ob) and is_active(ob.instruction, now)]
    if not active and not any(is_award(ob) for ob in obligations):
        return AwardStage(obligations, NO_FLOOR, (), 0.0, ())
    total_kw = sum(award_kw(ob.instruction) for ob in active)
    owed_kw = min(total_kw, deployed_cap_kw)
    share = owed_kw / total_kw if total_kw > 0 else 0.0
    missing_kw = max(0.0, owed_kw - mining_kw)
    short = missing_kw > max(MIN_TOLERANCE_KW, HOLD_TOLERANCE * owed_kw)
    out: list[Obligation] = []
    acks: list[DispatchAck] = []
    for ob in obligations:
        if not is_award(ob):
            out.append(ob)
            continue
        msg = ob.instruction
        if not is_active(msg, now):
            out.append(ob if ob.floor_kw == 0.0 else replace(ob, floor_kw=0.0))
            continue
        floor_kw = award_kw(msg) * share
        status = ob.status
        if not short:
            status = "complied"
        elif status == "complied" or (status == "accepted" and now >= _grace_end(msg, control)):
            status = "shortfall"
        if status != ob.status:
            own_missing_kw = missing_kw * (floor_kw / owed_kw) if owed_kw > 0 else 0.0
            reason = f"missing {own_missing_kw:.1f} kW" if status == "shortfall" else ""
            acks.append(DispatchAck(msg.id, status, reason, floor_kw, mining_kw, now))
        if status != ob.status or not math.isclose(floor_kw, ob.floor_kw):
            out.append(replace(ob, status=status, floor_kw=floor_kw))
        else:
            out.append(ob)
    floor = NO_FLOOR
    reasons: tuple[Reason, ...] = ()
    if active:
        rrs_kw = share * sum(
            award_kw(ob.instruction) for ob in active if ob.instruction.product == "RRS"
        )
        floor = AwardFloor(owed_kw, rrs_kw, f"dispatch:{active[0].id}")
        named = ", ".join(f"{ob.id} ({ob.instruction.product} {ob.instruction.mw:g} MW)"
                          for ob in active)  # fmt: skip
        detail = f"award {named}: price keeps at least {owed_kw:.1f} kW of mining running"
        reasons = (Reason("dispatch", None, detail),)
    any_short = any(is_award(ob) and ob.status == "shortfall" for ob in out)
    return AwardStage(tuple(out), floor, tuple(acks), missing_kw if any_short else 0.0, reasons)


def _grace_end(msg: DispatchInstruction, control: ControlConfig) -> float:
    """When an award's floor must be running: its start, plus the time to bring it on at the
    site's ramp and to see it confirmed."""
    start = msg.start if msg.start is not None else msg.notified_at
    return start + control.confirm_timeout_s + award_kw(msg) / control.ramp_up_kw_per_s


def listed_floor_kw(ob: Obligation) -> float | None:
    """dispatch/state's `floor_kw`: an award's floor now (0 before its start); None otherwise."""
    return round(ob.floor_kw, 3) if is_award(ob) else None
