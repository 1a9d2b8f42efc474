"""Meet a pool's target with the fewest changes (CONTRACT 2.7). Pure: no I/O, no clock.

Miners that take a power limit get one; the others are slept whole, least efficient (J/TH)
first, and woken in the reverse order. Sleep-only miners stay awake as long as the limitable
ones can absorb the cut at their lowest limit; only below that are limitable miners slept too,
least efficient first. Every plan draws at most the target (a raise never overshoots): an
unreachable miner counts at its last known draw, which no action can change. A miner already
where the plan wants it gets no action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MinerView:
    ip: str
    reachable: bool
    nominal_w: float
    j_per_th: float
    sleeping: bool
    limit_w: float | None  # the limit in force; None: none (draws nominal)
    power_w: float  # what it draws now (last known when unreachable)
    limits_w: tuple[float, ...] = ()  # the limits its firmware can take, ascending; () none
    settled: bool = True  # False: the limit in force is unknown (after a restart): re-assert it


@dataclass(frozen=True)
class Desired:
    sleeping: bool
    limit_w: float | None = None  # None: no limit


@dataclass(frozen=True)
class Plan:
    desired: dict[str, Desired]
    planned_w: float  # what the pool draws once the plan is carried out
    actions: dict[str, Desired]  # only the miners that change


def _merit(miner: MinerView) -> tuple[float, str]:
    return (miner.j_per_th, miner.ip)  # most efficient first


def plan(miners: Sequence[MinerView], target_w: float) -> Plan:
    fixed_w = sum(m.power_w for m in miners if not m.reachable)
    budget_w = target_w - fixed_w
    sleepers = sorted((m for m in miners if m.reachable and not m.limits_w), key=_merit)
    limitable = sorted((m for m in miners if m.reachable and m.limits_w), key=_merit)
    desired: dict[str, Desired] = {}

    full_w = sum(m.nominal_w for m in sleepers) + sum(m.nominal_w for m in limitable)
    if budget_w >= full_w:
        desired = {m.ip: Desired(False) for m in (*sleepers, *limitable)}
        return _finish(miners, desired, fixed_w + full_w)

    # Keep awake the longest efficient-first run of sleep-only miners that fits with every
    # limitable miner at its lowest limit.
    awake_limitable = list(limitable)
    floor_w = sum(m.limits_w[0] for m in awake_limitable)
    awake_w, keep = 0.0, 0
    for miner in sleepers:
        if awake_w + miner.nominal_w + floor_w > budget_w:
            break
        awake_w += miner.nominal_w
        keep += 1
    for i, miner in enumerate(sleepers):
        desired[miner.ip] = Desired(sleeping=i >= keep)
    # Below the floor of the limitable miners: sleep them too, least efficient first.
    while awake_limitable and floor_w > budget_w - awake_w:
        slept = awake_limitable.pop()
        floor_w -= slept.limits_w[0]
        desired[slept.ip] = Desired(sleeping=True)
    limited = _share(awake_limitable, max(0.0, budget_w - awake_w))
    desired.update(limited)
    drawn = awake_w + sum(_draw_w(m, limited[m.ip]) for m in awake_limitable)
    return _finish(miners, desired, fixed_w + drawn)


def _draw_w(miner: MinerView, want: Desired) -> float:
    if want.sleeping:
        return 0.0
    return miner.nominal_w if want.limit_w is None else min(miner.nominal_w, want.limit_w)


def _share(miners: list[MinerView], room_w: float) -> dict[str, Desired]:
    """Limits for `miners` summing to at most `room_w` (at least each one's lowest limit):
    the same fraction of nominal for each, rounded down to a limit it takes, then the rounding
    left over handed out efficient-first one step at a time."""
    nominal_w = sum(m.nominal_w for m in miners)
    if not miners or room_w >= nominal_w:
        return {m.ip: Desired(False) for m in miners}
    fraction = room_w / nominal_w
    level = {m.ip: _step_at_or_under(m, fraction * m.nominal_w) for m in miners}
    used = sum(m.limits_w[level[m.ip]] for m in miners)
    # A miner whose share is under its lowest limit sits at that limit: take the excess back
    # from the others, least efficient first (the floors together fit: the caller made sure).
    for miner in reversed(miners):
        while used > room_w and level[miner.ip] > 0:
            step = level[miner.ip]
            used -= miner.limits_w[step] - miner.limits_w[step - 1]
            level[miner.ip] = step - 1
    improved = True
    while improved:
        improved = False
        for miner in miners:
            step = level[miner.ip]
            if step + 1 < len(miner.limits_w):
                extra = miner.limits_w[step + 1] - miner.limits_w[step]
                if used + extra <= room_w:
                    level[miner.ip] = step + 1
                    used += extra
                    improved = True
    return {m.ip: _desired_limit(m, m.limits_w[level[m.ip]]) for m in miners}


def _step_at_or_under(miner: MinerView, watts: float) -> int:
    fitting = [i for i, step in enumerate(miner.limits_w) if step <= watts]
    return fitting[-1] if fitting else 0


def _desired_limit(miner: MinerView, limit_w: float) -> Desired:
    return Desired(False, None if limit_w >= miner.nominal_w else limit_w)


def _finish(miners: Sequence[MinerView], desired: dict[str, Desired], planned_w: float) -> Plan:
    actions = {}
    for miner in miners:
        want = desired.get(miner.ip)
        if want is None:
            continue
        if want.sleeping and miner.sleeping:
            continue  # asleep already: its limit does not matter
        if want.sleeping == miner.sleeping and want.limit_w == miner.limit_w and miner.settled:
            continue
        actions[miner.ip] = want
    return Plan(desired, planned_w, actions)
