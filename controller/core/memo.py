"""The steady walk: when nothing the walk reads has changed, its last result stands (issue 9).

Most decisions change nothing: telemetry follows the plan and the price has not moved. The
per-pool totals and the walk are then O(pools) of work that hands every pool record back as
it was (2-3 ms at 1,000 pools). The first decision that finds such a fixed point keeps it in
its compiled site (`SiteModel.memo`); the next ones reuse its totals and its walk, and pay
for a comparison of the pools' telemetry in C loops instead. The pipeline stages still run on
every decision, so every global input (price, meters, frequency, dispatch, override, failsafes
and their timers) is judged afresh; only what the walk is given is compared.

Why that is exact. `pool_totals` and `walk` read: the pool records, the site, the pools'
telemetry, the walk inputs the stages decided, and `now`. Each is held to what it was:

- the records: `state.pools` is the memo's dict itself, which its decision returned with every
  record the one it was given (nothing raised, no pool blind). Pool dicts are never mutated
  once built (the core builds a new one for any change);
- telemetry: every pool reports, each with the same (power_kw, available_kw, online,
  applied_seq), and no pool that reports on its own is stale at `now` (the memo is only made
  when no pool was unreachable); `at` is read for nothing else;
- the walk inputs: equal field for field except `confirm`, whose `cmd_seq` is read only to
  number a new command (a new command changes its record: the memo's walk issued none) and
  whose `now` is the next point;
- `now`: the totals and the walk compare it as `now - x >= t` (or `<`) with x a record's own
  timestamp: `changed_at` for the dwell, `target_at` for the confirm timer and in_transition,
  `escalated_at` for the fault timer. Each turns at x + t; the memo holds from the `now` it was
  made at until the earliest turn still ahead then, less a millisecond for the float rounding
  of `now - x`, and never for an earlier `now`.

tests/unit/test_properties_steady.py runs random scenarios through decide() with and without
the memo and asserts that every decision is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter

from controller.core.site import SiteModel
from controller.core.state import PoolState
from controller.core.totals import PoolTotals
from controller.core.walk import WalkInputs, WalkResult
from controller.model import PoolTelemetry

# What the totals and the walk read of a pool's report, `at` aside (staleness is judged apart).
_FIGURES = attrgetter("power_kw", "available_kw", "online", "applied_seq")
_AT = attrgetter("at")
# A timer's turn is computed as x + t, the rules compare now - x with t: both round (to 2e-7 s
# around today's epoch), so the memo stops this long before a turn.
_ROUNDING_S = 1e-3

Figures = tuple[float, float | None, bool, int]


@dataclass(slots=True)
class SteadyWalk:
    """A decision whose walk changed no pool record, and what it was computed from."""

    pools: dict[str, PoolState]  # its walk's output: the next decision's input, by identity
    figures: list[Figures]  # every pool's telemetry figures, in config order
    totals: PoolTotals
    inputs: WalkInputs
    result: WalkResult
    since: float  # the `now` it was made at
    until: float  # the earliest timer turn, less the rounding margin


def lookup(
    site: SiteModel,
    pools: dict[str, PoolState],
    telemetry: Mapping[str, PoolTelemetry],
    now: float,
) -> SteadyWalk | None:
    """The site's steady walk when these records and this telemetry are what it was made from
    and no timer has turned since; None otherwise (the full walk runs)."""
    memo = site.memo.walk
    if memo is None or pools is not memo.pools or not memo.since <= now < memo.until:
        return None
    try:
        reports = site.reports_of(telemetry)
        own = site.self_reports_of(telemetry)
    except KeyError:  # a pool has not reported
        return None
    if list(map(_FIGURES, reports)) != memo.figures:
        return None
    if own:
        # min() is the oldest report, or NaN when the first one's `at` is NaN: then no
        # comparison holds and the full walk judges it.
        oldest = min(map(_AT, own))
        if not now - oldest <= site.pool_stale_s:
            return None
    return memo


def same_inputs(memo: SteadyWalk, inputs: WalkInputs) -> bool:
    """The stages gave the walk what they gave the memo's (confirm aside: see the docstring)."""
    return inputs[:-1] == memo.inputs[:-1]


def remember(
    site: SiteModel,
    telemetry: Mapping[str, PoolTelemetry],
    totals: PoolTotals,
    inputs: WalkInputs,
    result: WalkResult,
    now: float,
) -> None:
    """Keep this decision's walk when it is a fixed point every pool's telemetry supports."""
    if result.changed or result.raised or result.blind or totals.unreachable:
        return
    if not totals.complete:
        return
    config = site.config
    economics, timeout_s = config.economics, config.control.confirm_timeout_s
    min_run_s, min_curtail_s = economics.min_run_s, economics.min_curtail_s
    horizon = now - _ROUNDING_S  # a turn at or before this has happened for every later now
    until = math.inf
    for ps in result.pools.values():
        turns = (ps.changed_at + min_run_s, ps.changed_at + min_curtail_s, ps.target_at + timeout_s)
        for turn in turns:
            if horizon < turn < until:
                until = turn
        if ps.escalated_at is not None:
            turn = ps.escalated_at + timeout_s
            if horizon < turn < until:
                until = turn
    figures = list(map(_FIGURES, site.reports_of(telemetry)))
    site.memo.walk = SteadyWalk(
        result.pools, figures, totals, inputs, result, now, until - _ROUNDING_S
    )
