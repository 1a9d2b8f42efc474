"""Operator override (CONTRACT 2.3; I4): it may lower the cap or choose `run`, never more.

The third stage of the pipeline: `curtail` and `limit` narrow the cap; `run` narrows nothing
(the price stage reads it: economics are ignored under the cap).
"""

from __future__ import annotations

from typing import NamedTuple

from controller.core.plan import Reason
from controller.core.policies import Cap
from controller.model import OverrideRequest


class OverrideStage(NamedTuple):
    cap: Cap
    current: OverrideRequest | None  # the active override after this decision's inbox
    changed: bool  # it differs from the previous one
    reasons: tuple[Reason, ...]


def stage(
    cap: Cap,
    previous: OverrideRequest | None,
    inbox: tuple[OverrideRequest, ...],
    now: float,
) -> OverrideStage:
    current = take_inbox(previous, inbox, now)
    narrowed = cap.narrow(override_cap_kw(current), "override")
    reasons: tuple[Reason, ...] = ()
    if narrowed is not cap and current is not None:
        detail = (
            f"override {current.mode} by {current.operator} caps mining at {narrowed.kw:.0f} kW"
        )
        reasons = (Reason("override", narrowed.kw, detail),)
    changed = current is not previous and current != previous
    return OverrideStage(narrowed, current, changed, reasons)


def take_inbox(
    current: OverrideRequest | None, inbox: tuple[OverrideRequest, ...], now: float
) -> OverrideRequest | None:
    """The newest request wins; `auto` clears; an expired override clears itself."""
    for request in inbox:
        current = None if request.mode == "auto" else request
    if current is not None and current.expires_at is not None and now >= current.expires_at:
        return None
    return current


def override_cap_kw(current: OverrideRequest | None) -> float | None:
    """The cap an override imposes; `run` and none impose none (they never widen)."""
    if current is None:
        return None
    if current.mode == "curtail":
        return 0.0
    if current.mode == "limit":
        return current.limit_kw if current.limit_kw is not None else 0.0
    return None
