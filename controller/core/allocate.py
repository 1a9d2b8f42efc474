"""Merit-order allocation under the cap, with ramp staggering (I2, I8) and outlet granularity."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from controller.core.site import PoolSpec

_EPS_KW = 1e-6


@dataclass(slots=True)
class Budget:
    """What is left to hand out in this decision, in merit order."""

    remaining_kw: float  # under the mining cap
    ramp_left_kw: float  # total increase still allowed (I8)
    never_raise: bool  # I3 and hold failsafes: no pool above its previous target


def allocate_pool(
    spec: PoolSpec,
    wants_run: bool,
    available_kw: float,
    previous_kw: float,
    previous_outlets: int | None,
    budget: Budget,
    hold: bool = False,
) -> tuple[float, int | None, bool, bool]:
    """(target_kw, outlets_on, cap_limited, ramp_limited) for one pool; updates the budget.

    `hold`: this pool may not be raised (no telemetry yet, CONTRACT 7 Startup).
    """
    # Conditional expressions, not min()/max(): this runs once per pool per decision.
    remaining = budget.remaining_kw
    desired = (available_kw if available_kw < remaining else remaining) if wants_run else 0.0
    cap_limited = wants_run and desired < available_kw - _EPS_KW
    ramp_limited = False
    if desired > previous_kw + _EPS_KW:
        if budget.never_raise or hold:
            desired = previous_kw
        else:
            allowed = previous_kw + budget.ramp_left_kw
            if desired > allowed + _EPS_KW:
                desired, ramp_limited = allowed, True
    outlets_on: int | None = None
    if spec.outlet_steps_kw is not None:
        rounded, count = round_to_outlets(spec.outlet_steps_kw, desired)
        if abs(desired - previous_kw) <= _EPS_KW:
            outlets_on = previous_outlets  # unchanged: which outlets are on stays as it is
        elif desired >= previous_kw - _EPS_KW and rounded < previous_kw - _EPS_KW:
            # Rounding a hold or a (ramp-limited) raise down would cut: keep what runs.
            outlets_on = previous_outlets
            desired = previous_kw
        else:
            desired, outlets_on = rounded, count
    if desired > previous_kw:
        left = budget.ramp_left_kw - (desired - previous_kw)
        budget.ramp_left_kw = left if left > 0.0 else 0.0
    left = remaining - desired
    budget.remaining_kw = left if left > 0.0 else 0.0
    return desired, outlets_on, cap_limited, ramp_limited


def round_to_outlets(steps_kw: tuple[float, ...], target_kw: float) -> tuple[float, int]:
    """The largest whole-outlet load at or under target: fewest outlets off (CONTRACT 7)."""
    count = bisect_right(steps_kw, target_kw + _EPS_KW) - 1
    if count < 0:  # below the first step (not max(): this runs for every outlet pool that moves)
        return steps_kw[0], 0
    return steps_kw[count], count


def clip_raise(
    spec: PoolSpec,
    previous_kw: float,
    previous_outlets: int | None,
    target_kw: float,
    outlets_on: int | None,
    limit_kw: float,
) -> tuple[float, int | None]:
    """A raise cut back to `limit_kw` (never below the previous target; whole outlets)."""
    if limit_kw >= target_kw - _EPS_KW:
        return target_kw, outlets_on
    clipped = limit_kw if limit_kw > previous_kw else previous_kw
    if spec.outlet_steps_kw is None:
        return clipped, None
    rounded, count = round_to_outlets(spec.outlet_steps_kw, clipped)
    if rounded < previous_kw + _EPS_KW:
        return previous_kw, previous_outlets
    return rounded, count
