"""What a decision and its snapshot show on the metrics (DESIGN point 11).

The metrics adapter knows gauges and counters; this view knows decisions. It keeps what it
last showed and calls the adapter for what changed only: `decide()` reuses every unchanged
pool record and obligation, so an `is` check finds them, and a steady decision touches a few
plan gauges and nothing per pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.adapters.metrics import Metrics
from controller.config import Config
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.policies.award import award_kw, is_active, is_award
from controller.core.state import ControllerState, Obligation, PoolState
from controller.model import REDUCTION_TYPES, PoolTelemetry, Reading


class MetricsView:
    def __init__(self, metrics: Metrics, config: Config | None = None) -> None:
        self.metrics = metrics
        self._pools: dict[str, PoolState] = {}
        self._telemetry: dict[str, PoolTelemetry] = {}
        self._readings: dict[str, Reading] = {}
        self._obligations: tuple[Obligation, ...] = ()
        self._override: object = None
        self._acting: object = None
        self._site_meters: tuple[str, ...] = ()
        self._tenant_meters: dict[str, tuple[str, ...]] = {}
        if config is not None:
            self.configure(config)

    def configure(self, config: Config) -> None:
        """Learn meter roles and tenants; on reload, forget pools now gone (the adapter drops
        their series)."""
        self.metrics.configure(config)
        self._site_meters = tuple(m.name for m in config.meters if m.role == "site")
        self._tenant_meters = {t.name: tuple(t.meters) for t in config.gpu_tenants}
        pools = {p.name for p in config.pools}
        self._pools = {n: ps for n, ps in self._pools.items() if n in pools}
        self._telemetry = {n: t for n, t in self._telemetry.items() if n in pools}
        self._readings.clear()  # meter roles may have moved: recompute sums next time

    # -- once per decision (hot path) ----------------------------------------------------------

    def update_from_decision(self, decision: Decision) -> None:
        """Everything a decision says: the plan, then obligations and override from the state."""
        self.update_from_plan(decision.plan)
        self.update_from_state(decision.next_state, decision.shortfall_kw)

    def update_from_plan(self, plan: Plan) -> None:
        m = self.metrics
        m.set_plan_kw(
            plan.mining_cap_kw,
            plan.mining_target_kw,
            plan.mining_measured_kw,
            plan.gpu_reserved_kw,
            plan.envelope_kw,
        )
        m.set_binding(plan.binding)
        m.set_failsafe(plan.failsafe)
        last = self._pools
        for name, ps in plan.pools.items():
            before = last.get(name)
            if before is ps:
                continue
            m.set_pool_plan(name, ps.target_kw, ps.state, None if before is None else before.state)
            last[name] = ps

    def update_from_state(self, state: ControllerState, shortfall_kw: float) -> None:
        """Dispatch obligations and the override from the controller state; `shortfall_kw` as
        the decision computed it (`Decision.shortfall_kw`)."""
        obs = state.obligations
        if not _same(obs, self._obligations):
            counts: dict[str, int] = {}
            for ob in obs:
                counts[ob.instruction.type.value] = counts.get(ob.instruction.type.value, 0) + 1
            self.metrics.set_dispatch_active(counts)
            self.metrics.set_dispatch_deadline(_earliest_deadline(obs))
            self.metrics.set_award_kw(_awarded_kw(obs, state.last_decision_at))
            self._obligations = obs
        self.metrics.set_shortfall_kw(shortfall_kw)
        if state.override is not self._override:
            self.metrics.set_override_active(state.override is not None)
            self._override = state.override

    def update_from_snapshot(self, snap: Snapshot) -> None:
        """Measured values: acting price, site and GPU meters, pool telemetry (changed only)."""
        m = self.metrics
        if snap.price is not None and snap.price is not self._acting:
            m.set_price(snap.price.product, snap.price.price_usd_per_mwh)
            self._acting = snap.price
        for name, t in snap.pools.items():
            if self._telemetry.get(name) is not t:
                m.set_pool_power_kw(name, t.power_kw)
                self._telemetry[name] = t
        if self._readings_changed(snap.meters_kw):
            meters = snap.meters_kw
            if self._site_meters:
                m.set_site_power_kw(_sum_kw(meters, self._site_meters))
            for tenant, names in self._tenant_meters.items():
                m.set_gpu_power_kw(tenant, _sum_kw(meters, names))

    def _readings_changed(self, meters: Mapping[str, Reading]) -> bool:
        changed = False
        last = self._readings
        for name, reading in meters.items():
            if last.get(name) is not reading:
                last[name] = reading
                changed = True
        return changed


def _same(a: tuple[Obligation, ...], b: tuple[Obligation, ...]) -> bool:
    # decide() builds a new tuple each time but reuses unchanged obligations.
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _awarded_kw(obligations: tuple[Obligation, ...], now: float | None) -> dict[str, float]:
    """The awarded kW of the awards active at the decision, per product. (An award turns
    active at its start by a decision that changes its record, so this is recounted then.)"""
    out: dict[str, float] = {}
    for ob in obligations:
        msg = ob.instruction
        if is_award(ob) and now is not None and is_active(msg, now) and msg.product is not None:
            out[msg.product] = out.get(msg.product, 0.0) + award_kw(msg)
    return out


def _earliest_deadline(obligations: tuple[Obligation, ...]) -> float | None:
    """The earliest deadline of a deployment not complied yet (a shortfall one included)."""
    deadlines = [
        ob.deadline
        for ob in obligations
        if ob.instruction.type in REDUCTION_TYPES and ob.status != "complied"
    ]
    return min(deadlines, default=None)


def _sum_kw(meters: Mapping[str, Reading], names: Iterable[str]) -> float | None:
    """Sum of the named meters; None (unknown) until every one of them has reported."""
    total = 0.0
    for name in names:
        reading = meters.get(name)
        if reading is None:
            return None
        total += reading.value
    return total
