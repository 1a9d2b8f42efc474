"""The plan checked once more just before it is applied (DESIGN point 2).

A violation is an internal error, never a command: `check_plan` raises `PlanViolation`, and
the runtime handles it as any decide() that raised (CONTRACT 7 Faults inside the daemon: a
retry without the inbox, the `decision_budget` failsafe, and every pool to 0 once decisions
have failed for confirm_timeout_s).

What is checked:
- every pool of the plan is a configured pool;
- each target is finite and within 0..max_kw. A record never commanded since start
  (`target_at` NEVER: seeded from its telemetry, or blind) holds a measured load, not a
  command: it may be above max_kw (a pool drawing more than rated, offline, which the walk
  keeps as it is), and the applier never sends it (I6): only its sign and finiteness count;
- the sum of ALL targets is at most `mining_cap_kw` (finite), up to float rounding: 1e-6 kW per
  pool plus 1e-9 of the cap, the slack of the cap property in tests/unit (which asserts this
  same sum on every step of every scenario).

Why the sum covers every pool, unreachable and blind ones included: the walk keeps an
unreachable pool's target only while max(target, measured load) fits in what the cap leaves
after the other faulted and unexplained loads; it allocates the reachable pools from the cap
less the loads of faulted and unreachable pools, each counted at max(target, measured), which
is at least its target; raises only go into room measured free under the cap; and a blind
pool (seeded at max_kw) or a pool seeded at its measured load is lowered like any other when
the cap needs it. Measured load may still exceed the cap (a pool that does not obey, a lowering
in flight): that is what confirmation and escalation handle, not a fault of the plan.
Protected PDUs cannot appear: a plan names pools only.
"""

from __future__ import annotations

import math
from operator import gt

from controller.core.plan import Plan
from controller.core.site import SiteModel
from controller.core.state import NEVER

_EPS_KW = 1e-6


class PlanViolation(ValueError):  # noqa: N818 - a violation, named as DESIGN point 2 says
    """A plan the core produced breaks a limit it must keep: a bug, never sent to a device."""


def check_plan(plan: Plan, site: SiteModel) -> None:
    """Raise `PlanViolation` naming every pool or sum at fault; return when the plan is sound."""
    # The common case in C loops: this runs on every decision, over every pool. A NaN or
    # infinite target makes the sum NaN or infinite and fails the first test, so `min` sees no
    # NaN. Whatever fails here (an exempt measured target too) gets the exact check below.
    pools, cap_kw = plan.pools, plan.mining_cap_kw
    targets = [ps.target_kw for ps in pools.values()]
    try:
        # The plan lists pools in merit order, which is the static one unless strike prices
        # reorder it: then the ratings come in the same order without a lookup per pool.
        names = tuple(pools)
        ratings = (
            site.static_max_kw
            if names == site.static_names
            else map(site.max_kw.__getitem__, names)
        )
        sound = (
            sum(targets) <= cap_kw + _tolerance_kw(len(targets), cap_kw)
            and cap_kw < math.inf
            and min(targets, default=0.0) >= 0.0
            and not any(map(gt, targets, ratings))
        )
    except KeyError:  # a pool the site does not have
        sound = False
    if sound:
        return
    problems = plan_violations(plan, site)
    if problems:
        raise PlanViolation("plan refused: " + "; ".join(problems))


def plan_violations(plan: Plan, site: SiteModel) -> list[str]:
    """What is wrong with the plan (empty when nothing is): see the module docstring."""
    specs = site.by_name
    total_kw = 0.0
    problems: list[str] = []
    for name, ps in plan.pools.items():
        target_kw = ps.target_kw
        total_kw += target_kw
        spec = specs.get(name)
        if spec is None:
            problems.append(f"{name}: not a configured pool")
            continue
        # Chained comparisons are False for NaN: one test covers the range and finiteness.
        if ps.target_at == NEVER:  # never commanded: a measure (see above)
            if not 0.0 <= target_kw < math.inf:
                problems.append(f"{name}: measured target {target_kw!r} kW")
        elif not 0.0 <= target_kw <= spec.max_kw:
            problems.append(f"{name}: target {target_kw!r} kW outside 0..{spec.max_kw!r}")
    cap_kw = plan.mining_cap_kw
    if not math.isfinite(cap_kw):
        problems.append(f"mining cap {cap_kw!r} kW is not finite")
    elif not total_kw <= cap_kw + _tolerance_kw(len(plan.pools), cap_kw):
        problems.append(f"sum of targets {total_kw!r} kW above the mining cap {cap_kw!r} kW")
    return problems


def _tolerance_kw(n_pools: int, cap_kw: float) -> float:
    return _EPS_KW * (n_pools + 1) + 1e-9 * abs(cap_kw)
