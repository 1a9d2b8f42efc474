"""Every pool to 0 without decide(): the last resort when decisions keep failing, and the
`shutdown_action = "curtail"` path (CONTRACT 7 Faults inside the daemon, section 5).

Deliberately tiny, so that it cannot fail where decide() did: each pool gets target 0 with a
new seq (an outlet pool all its outlets off); the confirm and escalation rules of the next good
decision take it from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from controller.core.plan import Plan
from controller.core.site import SiteModel
from controller.core.state import NEVER, ControllerState, PoolState
from controller.model import PoolTelemetry


def curtail_all(
    state: ControllerState, site: SiteModel, now: float, reason: str = "safety"
) -> ControllerState:
    pools: dict[str, PoolState] = {}
    for spec in site.pools:
        ps = state.pools.get(spec.name) or PoolState()
        if ps.target_kw <= 0.0 and ps.target_at != NEVER and ps.lowering:
            pools[spec.name] = ps  # already commanded to 0
            continue
        pools[spec.name] = replace(
            ps,
            target_kw=0.0,
            seq=ps.seq + 1,
            on=False,
            changed_at=now if ps.on else ps.changed_at,
            target_at=now,
            lowering=True,
            confirmed=False,
            outlets_on=0 if spec.outlet_steps_kw is not None else None,
            reason=reason,
            state="ramping",
            blind=False,
        )
    # No memo: its walk was made from records this replaces (decide() alone makes one).
    return replace(state, pools=pools, blind=frozenset(), last_decision_at=now, memo=None)


def curtail_plan(
    previous: Plan | None, state: ControllerState, now: float, failsafe: frozenset[str]
) -> Plan:
    """The plan that carries `curtail_all`'s records to the applier and the plan topic."""
    if previous is None:
        previous = Plan(now, None, 0.0, "safety", 0.0, 0.0, 0.0, 0.0, {}, frozenset())
    return replace(
        previous,
        at=now,
        mining_cap_kw=0.0,
        binding="safety",
        mining_target_kw=0.0,
        pools=state.pools,
        failsafe=previous.failsafe | failsafe,
    )


def all_curtailed(site: SiteModel, telemetry: Mapping[str, PoolTelemetry]) -> bool:
    """Every pool reports a load within its confirm tolerance of 0 (the shutdown wait)."""
    return all(
        (t := telemetry.get(spec.name)) is not None and t.power_kw <= spec.tolerance_kw + 1e-6
        for spec in site.pools
    )
