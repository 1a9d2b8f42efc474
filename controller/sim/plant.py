"""The simulated plant around decide(): pools that answer its plans, meters that add them up.

One model for every closed loop that runs decide() without devices: the backtest, the table
tests' harness, the property tests' world, the loop rig and the benchmarks. Each step is

    snap = plant.observe(price=..., ...)   # telemetry, meter, frequency, islanded readings
    decision = plant.decide(snap)           # the only call of decide() in the simulators
    plant.keep(decision)                    # its state is where the next decision starts
    plant.apply(decision.plan)              # the pools act (seen at the next observe)

A pool follows its target unless a fault says otherwise: `stuck` (ignores commands and draws
`stuck_power_kw`, or what it drew), `offline` (reports online=false, acts on nothing),
`ack_only` (a stuck or offline pool still reports the new seq), `delayed` (a lowering acts one
step late), `follow_share` (closes only that share of the gap per step), `available` (can draw
only that share of max_kw). Its telemetry can be missing (`unreported`: no agent at all;
`muted`: the agent acts but its reports are lost) or frozen (`silent`). A PDU cut always lands:
our own switch takes the load off whatever the agent does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.config import Config, PoolConfig
from controller.core.decide import decide
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, initial_state
from controller.drivers.kinds import pool_kind
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    OverrideRequest,
    PoolTelemetry,
    Reading,
)

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: times in failures stay readable


@dataclass
class Plant:
    """A site's pools, tenants and meters at `now`, and the controller state stepped over them."""

    config: Config
    now: float = T0
    state: ControllerState = field(init=False)
    last: Decision | None = None
    # -- what the devices draw and report
    power_kw: dict[str, float] = field(default_factory=dict)  # pool -> real draw (default 0)
    applied_seq: dict[str, int] = field(default_factory=dict)  # pool -> seq carried out
    tenant_kw: dict[str, float] = field(default_factory=dict)  # tenant -> draw (default firm)
    extra_aux_kw: float = 0.0  # load the site meter sees that nobody declared
    frequency_hz: float | None = 60.0  # None: no frequency reading
    islanded: bool = False
    # -- pool faults (see the module docstring)
    stuck: set[str] = field(default_factory=set)
    stuck_power_kw: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    ack_only: set[str] = field(default_factory=set)
    delayed: set[str] = field(default_factory=set)
    pending: dict[str, tuple[float, int]] = field(default_factory=dict)  # delayed: to come
    follow_share: dict[str, float] = field(default_factory=dict)  # default 1: all of the gap
    available: dict[str, float] = field(default_factory=dict)  # share of max_kw, default 1
    unreported: set[str] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)
    silent: dict[str, PoolTelemetry] = field(default_factory=dict)  # the last report, ageing
    _pools: dict[str, PoolConfig] = field(init=False, repr=False)
    _site: SiteModel | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state = initial_state(self.now)
        self._pools = {p.name: p for p in self.config.pools}
        for pool in self.config.pools:
            self.power_kw.setdefault(pool.name, 0.0)
            self.applied_seq.setdefault(pool.name, 0)
        for tenant in self.config.gpu_tenants:
            self.tenant_kw.setdefault(tenant.name, tenant.firm_kw)

    # -- deciding ---------------------------------------------------------------------------

    @property
    def site(self) -> SiteModel:
        """The compiled config; compiled again when a test or a reload swaps `config`."""
        if self._site is None or self._site.config is not self.config:
            self._site = compile_site(self.config)
        return self._site

    def decide(
        self, snap: Snapshot, now: float | None = None, state: ControllerState | None = None
    ) -> Decision:
        """decide() on this plant's config, at `now` from `state` (default: the plant's own);
        pure: nothing is kept."""
        # The one call of decide() outside the daemon's loop (backtest, tests, benchmarks).
        return decide(
            snap,
            self.state if state is None else state,
            self.now if now is None else now,
            self.site,
        )

    def keep(self, decision: Decision) -> None:
        self.state = decision.next_state
        self.last = decision

    # -- the devices ------------------------------------------------------------------------

    @property
    def mining_kw(self) -> float:
        return sum(self.power_kw.values())

    @property
    def site_kw(self) -> float:
        """What the site meter measures: GPU tenants + mining + aux (declared or not)."""
        gpu_kw = sum(self.tenant_kw.values())
        return gpu_kw + self.mining_kw + self.config.site.aux_kw + self.extra_aux_kw

    def go_silent(self, name: str) -> None:
        """The pool's agent stops publishing and acting: its last report stays, ageing."""
        self.silent[name] = PoolTelemetry(
            self.power_kw[name], None, True, self.applied_seq[name], self.now
        )

    def apply(self, plan: Plan) -> None:
        """The pools act on `plan`: what the next `observe` reports."""
        for name, ps in plan.pools.items():
            pool = self._pools.get(name)
            if pool is None:  # dropped by a config reload
                continue
            if ps.cut and pool.pdus:
                self.power_kw[name] = 0.0  # our own PDU switch did it
                if name not in self.stuck or name in self.ack_only:
                    self.applied_seq[name] = ps.seq
                continue
            if name in self.stuck:
                self.power_kw[name] = self.stuck_power_kw.get(name, self.power_kw[name])
            elif not (name in self.offline or name in self.unreported or name in self.silent):
                self._follow(pool, ps.target_kw, ps.seq)
                continue
            if name in self.ack_only:  # it says it did, whether or not it did
                self.applied_seq[name] = ps.seq

    def _follow(self, pool: PoolConfig, target_kw: float, seq: int) -> None:
        name = pool.name
        reachable_kw = min(target_kw, self.available.get(name, 1.0) * pool.max_kw)
        power_kw = self.power_kw[name]
        if name in self.delayed:
            # A lowering it was told last step happens now; a raise acts at once.
            told = (reachable_kw, seq)
            if reachable_kw < power_kw:
                told = self.pending.get(name, told)
            self.pending[name] = (reachable_kw, seq)
            reachable_kw, seq = told
        share = self.follow_share.get(name, 1.0)
        self.power_kw[name] = (
            reachable_kw if share >= 1.0 else power_kw + share * (reachable_kw - power_kw)
        )
        self.applied_seq[name] = seq

    # -- what the controller sees -----------------------------------------------------------

    def telemetry(self) -> dict[str, PoolTelemetry]:
        """Each pool's report at `now` (none from an unreported or muted one)."""
        out: dict[str, PoolTelemetry] = {}
        for pool in self.config.pools:
            name = pool.name
            if name in self.unreported or name in self.muted:
                continue
            frozen = self.silent.get(name)
            if frozen is not None:
                out[name] = frozen
                continue
            available_kw = None
            # an outlet pool reports what its outlets are rated, not an available power
            if not pool_kind(pool.driver).switches_outlets:
                available_kw = self.available.get(name, 1.0) * pool.max_kw
            out[name] = PoolTelemetry(
                self.power_kw[name],
                available_kw,
                name not in self.offline,
                self.applied_seq[name],
                self.now,
            )
        return out

    def meters_kw(
        self, site_age_s: float | None = 0.0, gpu_age_s: float | None = 0.0
    ) -> dict[str, Reading]:
        """Every meter's reading, taken `age` seconds ago (None: that meter does not answer);
        a tenant's draw is split evenly over its meters."""
        out: dict[str, Reading] = {}
        if gpu_age_s is not None:
            for tenant in self.config.gpu_tenants:
                for gpu_meter in tenant.meters:
                    kw = self.tenant_kw[tenant.name] / len(tenant.meters)
                    out[gpu_meter] = Reading(kw, self.now - gpu_age_s)
        if site_age_s is not None:
            site_kw = self.site_kw
            for meter in self.config.meters:
                if meter.role == "site":
                    out[meter.name] = Reading(site_kw, self.now - site_age_s)
        return out

    def observe(
        self,
        *,
        price: ActingPrice | None = None,
        hashprice: float | None = None,
        dispatch: tuple[DispatchInstruction, ...] = (),
        overrides: tuple[OverrideRequest, ...] = (),
        cmd_seq: Mapping[str, int] | None = None,
        budget_failsafe: bool = False,
        site_age_s: float | None = 0.0,
        gpu_age_s: float | None = 0.0,
        frequency_age_s: float | None = 0.0,
    ) -> Snapshot:
        """The snapshot the daemon would freeze at `now`: the devices as they are, the feeds'
        inputs as given. The islanded flag comes with the site meter's reading (and its age)."""
        flag = 1.0 if self.islanded else 0.0
        islanded: Reading | None = Reading(flag, self.now)
        if any(m.role == "site" for m in self.config.meters):
            islanded = None if site_age_s is None else Reading(flag, self.now - site_age_s)
        frequency = None
        if self.frequency_hz is not None and frequency_age_s is not None:
            frequency = Reading(self.frequency_hz, self.now - frequency_age_s)
        return Snapshot(
            price=price,
            hashprice_usd_per_ph_day=hashprice,
            meters_kw=self.meters_kw(site_age_s, gpu_age_s),
            frequency_hz=frequency,
            islanded=islanded,
            pools=self.telemetry(),
            dispatch_inbox=dispatch,
            override_inbox=overrides,
            budget_failsafe=budget_failsafe,
            cmd_seq=dict(cmd_seq or {}),
        )
