"""The steady walk: when nothing the walk reads has changed, its last result stands (issue 9).

Most decisions change nothing: telemetry follows the plan and the price has not moved. The
per-pool totals and the walk are then O(pools) of work that hands every pool record back as
it was (2-3 ms at 1,000 pools). The first decision that finds such a fixed point returns it in
the state it hands on (`ControllerState.memo`: not persisted, not compared); the next ones
reuse its totals and its walk, and pay for a comparison of the pools' telemetry in C loops
instead. decide() stays pure: it reads the memo from the state it is given and returns the one
the next decision reads, and never mutates either (what a memo learns when it is first used, its
reports' figures and its timer horizon, goes into a new memo). A memo is used only with the
compiled site it was made with (`memo.site is site`): a reload compiles a new site, and every
other path that builds a state (start, restore, curtail_all, reload) drops it.

The pipeline stages still run on every decision, so every global input (price, meters,
frequency, dispatch, override, failsafes and their timers) is judged afresh; only what the walk
is given is compared.

Why that is exact. `pool_totals` and `walk` read: the pool records, the site, the pools'
telemetry, the walk inputs the stages decided, and `now`. Each is held to what it was:

- the site: the very SiteModel the memo was made with (its pools, ratings and settings);
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
from dataclasses import dataclass, replace
from functools import partial
from itertools import chain, repeat
from operator import add, attrgetter, is_not, lt, ne

from controller.core.site import SiteModel
from controller.core.state import PoolState
from controller.core.totals import PoolTotals
from controller.core.walk import WalkInputs, WalkResult
from controller.model import PoolTelemetry

# What the totals and the walk read of a pool's report, `at` aside (staleness is judged apart).
_FIGURES = attrgetter("power_kw", "available_kw", "online", "applied_seq")
_AT = attrgetter("at")
_CHANGED_AT = attrgetter("changed_at")
_TARGET_AT = attrgetter("target_at")
_ESCALATED_AT = attrgetter("escalated_at")
# A timer's turn is computed as x + t, the rules compare now - x with t: both round (to 2e-7 s
# around today's epoch), so the memo stops this long before a turn.
_ROUNDING_S = 1e-3

Figures = tuple[float, float | None, bool, int]


@dataclass(frozen=True, slots=True)
class SteadyWalk:
    """A decision whose walk changed no pool record, and what it was computed from.

    What costs O(pools) is left to the first decision that can use it: on a site whose reports
    change at every decision (power wanders), the memo is made every time and never used, and
    must cost next to nothing then. That decision returns a copy with `figures` and `until`
    filled in (frozen: a memo another state holds is never changed under it).
    """

    site: SiteModel  # the compiled site it was made with: used with that one only (identity)
    pools: dict[str, PoolState]  # its walk's output: the next decision's input, by identity
    reports: tuple[PoolTelemetry, ...]  # every pool's report, in config order
    totals: PoolTotals
    inputs: WalkInputs
    result: WalkResult
    since: float  # the `now` it was made at
    figures: tuple[Figures, ...] | None = None  # of `reports`, once a decision compared them
    until: float | None = None  # the earliest timer turn less the margin, once needed


def lookup(
    site: SiteModel,
    memo: SteadyWalk | None,
    pools: dict[str, PoolState],
    telemetry: Mapping[str, PoolTelemetry],
    now: float,
) -> SteadyWalk | None:
    """The state's steady walk when this site, these records and this telemetry are what it was
    made from and no timer has turned since; None otherwise (the full walk runs). What is
    returned is the memo, or a copy of it that knows its figures and timer horizon: the one the
    decision's state hands on."""
    if memo is None or memo.site is not site or pools is not memo.pools:
        return None
    if not memo.since <= now:
        return None
    try:
        reports = site.reports_of(telemetry)
        own = site.self_reports_of(telemetry)
    except KeyError:  # a pool has not reported
        return None
    # Stops at the first report that differs: most misses cost one or two pools.
    figures = memo.figures if memo.figures is not None else map(_FIGURES, memo.reports)
    if any(map(ne, map(_FIGURES, reports), figures)):
        return None
    learnt_figures = memo.figures
    if learnt_figures is None:
        learnt_figures = tuple(map(_FIGURES, reports))
    if own:
        # min() is the oldest report, or NaN when the first one's `at` is NaN: then no
        # comparison holds and the full walk judges it.
        oldest = min(map(_AT, own))
        if not now - oldest <= site.pool_stale_s:
            return None
    until = memo.until
    if until is None:
        until = _until(site, memo.pools, memo.since)
    if not now < until:
        return None
    if memo.figures is None or memo.until is None:  # once per memo: a copy that knows them
        memo = replace(memo, figures=learnt_figures, until=until)
    return memo


def same_inputs(memo: SteadyWalk, inputs: WalkInputs) -> bool:
    """The stages gave the walk what they gave the memo's (confirm aside: see the docstring)."""
    return inputs[:-1] == memo.inputs[:-1]


def remember(
    site: SiteModel,
    previous: SteadyWalk | None,
    telemetry: Mapping[str, PoolTelemetry],
    totals: PoolTotals,
    inputs: WalkInputs,
    result: WalkResult,
    now: float,
) -> SteadyWalk | None:
    """The memo the next state carries after a full walk: this decision's walk when it is a
    fixed point every pool's telemetry supports; else the previous memo while it still applies
    to this site and the records handed on (lookup judges the rest); else None."""
    if result.changed or result.raised or result.blind or totals.unreachable or not totals.complete:
        if previous is not None and previous.site is site and previous.pools is result.pools:
            return previous
        return None
    reports = site.reports_of(telemetry)
    return SteadyWalk(site, result.pools, reports, totals, inputs, result, now)


def _until(site: SiteModel, pools: dict[str, PoolState], since: float) -> float:
    """The earliest turn after `since` of any record's timer, less the rounding margin.

    A turn at or before `since - margin` has happened for every later `now`; NaN timestamps
    never turn (every comparison with them is false), and the filter drops them.
    """
    config = site.config
    economics, timeout_s = config.economics, config.control.confirm_timeout_s
    records = pools.values()
    changed_at = list(map(_CHANGED_AT, records))
    escalated_at = list(filter(partial(is_not, None), map(_ESCALATED_AT, records)))
    turns = chain(
        map(add, changed_at, repeat(economics.min_run_s)),
        map(add, changed_at, repeat(economics.min_curtail_s)),
        map(add, map(_TARGET_AT, records), repeat(timeout_s)),
        map(add, escalated_at, repeat(timeout_s)),
    )
    ahead = filter(partial(lt, since - _ROUNDING_S), turns)  # C loops: O(pools), once
    return min(ahead, default=math.inf) - _ROUNDING_S
