"""Pool records for pools decide() has none for, or only a guess (CONTRACT 7 Startup, I6).

A pool without a record (first start, a pool added by a reload) starts from its telemetry: a
pool drawing power counts as running at its draw, so a restart leaves it as it is. A pool not
heard from yet is `blind`: it counts at its max_kw, is never raised, and is commanded like any
other pool as soon as a cap or the economics need it lower. Its first telemetry re-seeds it,
unless a decision has commanded it since. Records restored from the state store are not seeded
here: they are what the controller last commanded.
"""

from __future__ import annotations

from controller.core.plan import Snapshot
from controller.core.site import PoolSpec, SiteModel
from controller.core.state import NEVER, ControllerState, PoolState
from controller.model import PoolTelemetry


def pools_for(site: SiteModel, state: ControllerState, snap: Snapshot) -> dict[str, PoolState]:
    """`state.pools` with every configured pool present and blind pools re-seeded."""
    pools = state.pools
    if pools.keys() == site.by_name.keys() and not state.blind:
        return pools  # the steady case: nothing to seed
    telemetry = snap.pools
    seeded: dict[str, PoolState] = {}
    for spec in site.pools:
        ps = pools.get(spec.name)
        t = telemetry.get(spec.name)
        retained_seq = snap.cmd_seq.get(spec.name, 0)
        if ps is None:
            ps = from_telemetry(spec, t, retained_seq) if t else blind(spec, retained_seq)
        elif ps.blind and t is not None and ps.target_at == NEVER:
            ps = from_telemetry(spec, t, max(ps.seq, retained_seq))
        seeded[spec.name] = ps
    return seeded


def from_telemetry(spec: PoolSpec, t: PoolTelemetry, seq: int) -> PoolState:
    running = t.power_kw > spec.tolerance_kw
    # Outlet pools: which outlets are on is unknown until decide() commands them (outlets_on
    # None); the applier leaves them as they are until then (I6).
    return PoolState(
        target_kw=t.power_kw if running else 0.0,
        seq=max(seq, t.applied_seq),
        on=running,
        outlets_on=None if running or spec.outlet_steps_kw is None else 0,
        state="running" if running else "curtailed",
    )


def blind(spec: PoolSpec, seq: int) -> PoolState:
    return PoolState(target_kw=spec.max_kw, seq=seq, on=True, state="running", blind=True)
