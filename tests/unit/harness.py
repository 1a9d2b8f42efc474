"""The closed loop of the table tests: the harness site, and the plant stepped by time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.config import Config
from controller.core.plan import Decision, DispatchAck, Snapshot
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
)
from controller.sim.configs import (
    PoolShape,
    TenantShape,
    build_config,
    site_data,
    with_sections,
)
from controller.sim.plant import Plant

# The harness site: 30 MW POI, one 10 MW GPU tenant, three pools of falling efficiency (eff and
# mid behind a PDU each, old with no hard-cut path; mid trips on under-frequency).
POOLS = (
    PoolShape("eff", max_kw=6000, efficiency_j_per_th=17.0, outlet_kw=10),
    PoolShape("mid", max_kw=6000, efficiency_j_per_th=22.0, ufr=True, outlet_kw=10),
    PoolShape("old", max_kw=6000, efficiency_j_per_th=30.0, outlets=0),
)
TENANT = TenantShape("tenant-a", firm_kw=10000, meters=("gpu-a",), pdus=("pdu-gpu",))
SECTIONS = {
    "economics": {"min_run_s": 0, "min_curtail_s": 0, "hysteresis_usd_per_mwh": 10},
    "control": {"ramp_up_kw_per_s": 1_000_000, "confirm_timeout_s": 5, "tick_s": 1.0},
}


def make_config(**sections: Any) -> Config:
    """The harness site; a table in `sections` is merged into its table, a list replaces."""
    data = site_data(
        POOLS, [TENANT], poi_limit_kw=30000, aux_kw=1000, margin_kw=500, sections=SECTIONS
    )
    return build_config(with_sections(data, sections))


@dataclass
class SiteSim(Plant):
    """The plant stepped by time: each step decides on telemetry that follows the plan of the
    step before. The feeds (price, dispatch, override) are the test's to set."""

    now: float = 1000.0
    price: float | None = 20.0
    price_at: float | None = None  # the price was received then (None: fresh every step)
    hashprice: float | None = None
    site_meter_fresh: bool = True
    inbox: list[DispatchInstruction] = field(default_factory=list)
    overrides: list[OverrideRequest] = field(default_factory=list)
    cmd_seq: dict[str, int] = field(default_factory=dict)  # our retained cmd, read back
    acks: list[tuple[str, str]] = field(default_factory=list)
    ack_log: list[DispatchAck] = field(default_factory=list)  # every ack, whole

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tenant_kw = {t.name: 9000.0 for t in self.config.gpu_tenants}

    @property
    def gpu_kw(self) -> float:
        """What the site's one GPU tenant draws."""
        return sum(self.tenant_kw.values())

    @gpu_kw.setter
    def gpu_kw(self, kw: float) -> None:
        (tenant,) = self.tenant_kw
        self.tenant_kw[tenant] = kw

    def snapshot(self) -> Snapshot:
        price = None
        if self.price is not None:
            at = self.now if self.price_at is None else self.price_at
            price = ActingPrice(self.price, at, at, "rt_spp")
        return self.observe(
            price=price,
            hashprice=self.hashprice,
            dispatch=tuple(self.inbox),
            overrides=tuple(self.overrides),
            cmd_seq=self.cmd_seq,
            site_age_s=0.0 if self.site_meter_fresh else None,
        )

    def step(self, dt_s: float = 1.0) -> Decision:
        """Advance time, decide, then let pools apply the new plan (telemetry for next step)."""
        self.now += dt_s
        decision = self.decide(self.snapshot())
        self.inbox.clear()
        self.overrides.clear()
        self.keep(decision)
        self.acks += [(a.id, a.status) for a in decision.acks]
        self.ack_log += decision.acks
        self.apply(decision.plan)
        return decision

    def run(self, seconds: float, dt_s: float = 1.0) -> Decision:
        steps = max(1, int(seconds / dt_s))
        for _ in range(steps):
            decision = self.step(dt_s)
        return decision

    def targets(self) -> dict[str, float]:
        assert self.last is not None
        return {name: ps.target_kw for name, ps in self.last.plan.pools.items()}

    def dispatch(self, kind: str, msg_id: str = "D1", **fields: Any) -> None:
        values: dict[str, Any] = {
            "id": msg_id,
            "type": DispatchType(kind),
            "notified_at": self.now,
            "received_at": self.now,
            "mining_kw_at_receipt": self.mining_kw,
        }
        values.update(fields)
        self.inbox.append(DispatchInstruction(**values))

    def override(self, mode: str, ttl_s: float = 600, limit_kw: float | None = None) -> None:
        expires = None if mode == "auto" else self.now + ttl_s
        self.overrides.append(
            OverrideRequest(mode, limit_kw, expires, "op", "test", self.now, f"n{self.now}")  # type: ignore[arg-type]
        )
