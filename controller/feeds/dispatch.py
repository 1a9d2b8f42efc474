"""QSE dispatch instructions (CONTRACT 2.2 and section 7 Dispatch).

Unknown extra keys are accepted and ignored: QSE gateways add their own fields (routing ids,
ERCOT's original text), and refusing them would make an integration break on a gateway
upgrade. Keys that do not apply to a type (`mw` on an EEA, `start` on a RECALL, `"mw": null`
from gateways that serialise every field) are ignored the same way.
"""

from __future__ import annotations

from typing import Any

from controller.feeds.common import (
    MAX_POWER_KW,
    FeedRejected,
    as_id,
    as_instant,
    as_int,
    as_str,
    load_json_object,
    number_in,
    peek_id,
    require,
    shown,
)
from controller.model import AWARD_PRODUCTS, DispatchInstruction, DispatchType

MW_TYPES = frozenset(
    {
        DispatchType.RRS,
        DispatchType.ECRS,
        DispatchType.NSRS,
        DispatchType.ERS10,
        DispatchType.ERS30,
        DispatchType.CLR,
        DispatchType.LIMIT,
        DispatchType.AWARD,
    }
)
# Time allowed to reach the instructed level (section 7): ERCOT's deployment windows, with
# ERS-10 at 10 min and ERS-30 / NSRS at 30 min; LIMIT, EEA and 4CP apply at once.
DEFAULT_DEADLINE_S: dict[DispatchType, float] = {
    DispatchType.RRS: 600.0,
    DispatchType.ECRS: 600.0,
    DispatchType.ERS10: 600.0,
    DispatchType.NSRS: 1800.0,
    DispatchType.ERS30: 1800.0,
    DispatchType.CLR: 300.0,
    DispatchType.LIMIT: 0.0,
    DispatchType.EEA: 0.0,
    DispatchType.FOUR_CP: 0.0,
    # An award is held from its start; restoring the floor takes the ramp (policies/award.py).
    DispatchType.AWARD: 0.0,
}
EEA_LEVELS = range(4)
# ERCOT deployment windows are minutes (ERS-30 the longest at 30); an instruction that gives a
# day or more is a unit mix-up (ms for s), not a schedule. It also keeps start + deadline_s a
# printable time (an unbounded deadline once overflowed clock.iso and killed the daemon).
MAX_DEADLINE_S = 86_400.0
# 10 GW (feeds.common.MAX_POWER_KW): more than any site will be told to shed or hold; it keeps
# mw x 1000 kW/MW a finite, JSON-printable cap.
MAX_MW = MAX_POWER_KW / 1000.0


def parse_dispatch(payload: bytes, received_at: float, mining_kw_now: float) -> DispatchInstruction:
    """Validate one dispatch message; raise FeedRejected naming the field and the problem.

    `mining_kw_now` is the measured mining load at receipt: the level a reduction deployment
    is measured from (section 7), stamped into the instruction so a restart keeps it.
    """
    try:
        return _parse(payload, received_at, mining_kw_now)
    except FeedRejected as exc:
        # Answered with its id all the same when it has a usable one (CONTRACT 2.2).
        exc.msg_id = peek_id(payload)
        raise


def _parse(payload: bytes, received_at: float, mining_kw_now: float) -> DispatchInstruction:
    obj = load_json_object(payload, "a dispatch instruction")
    instruction_id = as_id(require(obj, "id"), "id")
    type_text = as_str(require(obj, "type"), "type")
    try:
        kind = DispatchType(type_text)
    except ValueError:
        known = ", ".join(member.value for member in DispatchType)
        raise FeedRejected(
            "bad_field", f"type: unknown {shown(type_text)}; known: {known}"
        ) from None
    notified_at = as_instant(require(obj, "notified_at"), "notified_at")
    mw: float | None = None
    level: int | None = None
    start, end, deadline_s = notified_at, None, 0.0
    recall_id: str | None = None
    product: str | None = None
    if kind == DispatchType.RECALL:
        recall_id = as_id(require(obj, "recall_id"), "recall_id")
    elif kind != DispatchType.HEARTBEAT:
        mw = _mw(obj) if kind in MW_TYPES else None
        level = _eea_level(obj) if kind == DispatchType.EEA else None
        start, end = _window(obj, kind, notified_at)
        deadline_s = _deadline_s(obj, kind)
        if kind == DispatchType.AWARD and end is not None:  # _window required it
            product = _award(obj, start, end, received_at)
    return DispatchInstruction(
        id=instruction_id,
        type=kind,
        notified_at=notified_at,
        received_at=received_at,
        mining_kw_at_receipt=mining_kw_now,
        mw=mw,
        level=level,
        start=start,
        end=end,
        deadline_s=deadline_s,
        recall_id=recall_id,
        product=product,
    )


def _award(obj: dict[str, Any], start: float, end: float, received_at: float) -> str:
    """An award's product, and its window checked: end after start and not already past
    (CONTRACT 2.2; `_window` required both ends): a window that holds nothing is refused."""
    product = as_str(require(obj, "product"), "product")
    if product not in AWARD_PRODUCTS:
        known = ", ".join(AWARD_PRODUCTS)
        raise FeedRejected("bad_field", f"product: unknown {shown(product)}; known: {known}")
    if end <= start:
        raise FeedRejected("bad_field", f"end: {shown(obj['end'])} is not after start")
    if end <= received_at:
        raise FeedRejected("bad_field", f"end: {shown(obj['end'])} is already past")
    return product


def _mw(obj: dict[str, Any]) -> float:
    return number_in(require(obj, "mw"), "mw", 0.0, MAX_MW)


def _eea_level(obj: dict[str, Any]) -> int:
    level = as_int(require(obj, "level"), "level")
    if level not in EEA_LEVELS:
        raise FeedRejected("out_of_range", f"level: EEA level must be 0-3, got {level}")
    return level


def _window(
    obj: dict[str, Any], kind: DispatchType, notified_at: float
) -> tuple[float, float | None]:
    if kind in (DispatchType.FOUR_CP, DispatchType.AWARD):
        # A 4CP window without both ends cannot be scheduled; defaulting would curtail forever.
        # An award is sold for hours it names: a default would hold load nobody is paid for.
        require(obj, "start")
        require(obj, "end")
    start = notified_at
    if obj.get("start") is not None:
        start = as_instant(obj["start"], "start")
    end = None
    if obj.get("end") is not None:
        end = as_instant(obj["end"], "end")
        if end < start:
            raise FeedRejected("bad_field", f"end: {shown(obj['end'])} is before start")
    return start, end


def _deadline_s(obj: dict[str, Any], kind: DispatchType) -> float:
    if obj.get("deadline_s") is None:
        return DEFAULT_DEADLINE_S[kind]
    return number_in(obj["deadline_s"], "deadline_s", 0.0, MAX_DEADLINE_S)
