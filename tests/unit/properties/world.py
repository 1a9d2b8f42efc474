"""The simulated site that answers decide()'s plans, and the run of a scenario through it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from controller.config import Config
from controller.core.decide import decide
from controller.core.plan import Decision, Snapshot
from controller.core.site import compile_site
from controller.core.state import ControllerState, initial_state
from controller.model import (
    REDUCTION_TYPES,
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
    PoolTelemetry,
    Reading,
)
from tests.unit.factories import T0, acting_price, protected_pdu_names
from tests.unit.properties.oracle import Oracle, View
from tests.unit.properties.sites import Behaviour
from tests.unit.properties.strategies import DispatchEvent, OverrideEvent, Scenario, StepInput

# ---------------------------------------------------------------------------------------------
# Tolerances. Targets are sums of floats; anything beyond a micro-kW per pool is a real excess.

EPS_KW = 1e-6


def slack(n: int, *values: float) -> float:
    return EPS_KW * (n + 1) + 1e-9 * max((abs(v) for v in values), default=0.0)


# ---------------------------------------------------------------------------------------------
# The world: devices and feeds that answer the plans


FREQUENCY_HZ = {
    "nominal": 60.0,
    "trip": 59.7,
    "between": 59.8,
    "above": 59.95,
    "stale_trip": 59.5,
    "stale_nominal": 60.0,
}


@dataclass
class World:
    config: Config
    scenario: Scenario
    power_kw: dict[str, float]
    seq: dict[str, int]
    online: dict[str, bool]
    stuck: dict[str, bool]
    present: dict[str, bool]
    available: dict[str, float]
    price: ActingPrice | None = None
    hashprice: float | None = None  # live hashprice: the last value received stays
    nonce: int = 0

    @classmethod
    def start(cls, config: Config, scenario: Scenario) -> World:
        pools = config.pools
        behaviours = scenario.behaviours
        return cls(
            config=config,
            scenario=scenario,
            power_kw={
                p.name: b.initial_fraction * p.max_kw
                for p, b in zip(pools, behaviours, strict=True)
            },
            seq={p.name: 0 for p in pools},
            online={p.name: True for p in pools},
            stuck={p.name: b.follow == 0.0 for p, b in zip(pools, behaviours, strict=True)},
            present={p.name: True for p in pools},
            available={p.name: b.available for p, b in zip(pools, behaviours, strict=True)},
        )

    def respond(self, previous: Decision | None, event: tuple[int, str] | None) -> None:
        """The devices act on the last plan during the step's interval."""
        pools = self.config.pools
        if event is not None:
            name = pools[event[0] % len(pools)].name
            kind = event[1]
            if kind in ("offline", "online"):
                self.online[name] = kind == "online"
            elif kind in ("stuck", "unstuck"):
                self.stuck[name] = kind == "stuck"
            elif kind in ("absent", "present"):
                self.present[name] = kind == "present"
            elif kind == "overdraw":  # the largest draw the pool feed accepts (CONTRACT 2.4)
                self.power_kw[name] = 10.0 * pools[event[0] % len(pools)].max_kw
                self.stuck[name] = True
            else:
                self.available[name] = {"half": 0.5, "zero": 0.0, "full": 1.0}[kind[10:]]
        if previous is None:
            return
        for pool, behaviour in zip(pools, self.scenario.behaviours, strict=True):
            ps = previous.plan.pools.get(pool.name)
            if ps is None:  # added by a reload: nothing commanded yet
                continue
            if ps.cut and pool.pdus:
                self.power_kw[pool.name] = 0.0  # our own PDU switch did it
                if not self.stuck[pool.name] or behaviour.ack_only:
                    self.seq[pool.name] = ps.seq
                continue
            if self.stuck[pool.name] or not self.online[pool.name]:
                if behaviour.ack_only:
                    self.seq[pool.name] = ps.seq
                continue
            reachable = min(ps.target_kw, self.available_kw(pool.name, pool.max_kw))
            follow = behaviour.follow if behaviour.follow > 0 else 1.0
            power = self.power_kw[pool.name]
            self.power_kw[pool.name] = power + follow * (reachable - power)
            self.seq[pool.name] = ps.seq

    def available_kw(self, name: str, max_kw: float) -> float:
        return self.available[name] * max_kw

    def snapshot(self, step: StepInput, now: float) -> Snapshot:
        cfg = self.config
        m = step.meters
        stale_at = now - cfg.control.meter_stale_s - 1.0
        if step.price is not None:
            received = now - cfg.feeds.price_stale_s - 1.0 if step.misc.price_received_late else now
            self.price = acting_price(step.price, received)
        if step.misc.hashprice is not None:
            self.hashprice = step.misc.hashprice
        pools: dict[str, PoolTelemetry] = {}
        for pool in cfg.pools:
            if not self.present[pool.name]:
                continue
            available = None
            if pool.driver != "pdu":
                available = self.available_kw(pool.name, pool.max_kw)
            pools[pool.name] = PoolTelemetry(
                self.power_kw[pool.name],
                available,
                self.online[pool.name],
                self.seq[pool.name],
                now,
            )
        if self.scenario.ghost_telemetry:
            for name in [*protected_pdu_names(cfg), "ghost", *(m.name for m in cfg.meters)]:
                pools[name] = PoolTelemetry(5000.0, 5000.0, True, 10**6, now)
        meters: dict[str, Reading] = {}
        gpu_total_kw = 0.0
        gpu_at = None if m.gpu == "absent" else now
        if m.gpu == "stale":
            gpu_at = stale_at
        for tenant in cfg.gpu_tenants:
            drawn_kw = tenant.firm_kw * m.gpu_factor
            gpu_total_kw += drawn_kw
            for meter_name in tenant.meters:
                if gpu_at is not None:
                    meters[meter_name] = Reading(drawn_kw / len(tenant.meters), gpu_at)
        site_kw = gpu_total_kw + sum(self.power_kw.values()) + cfg.site.aux_kw + m.extra_aux_kw
        islanded: Reading | None = Reading(1.0 if m.islanded else 0.0, now)
        for meter in cfg.meters:
            if meter.role == "site":
                if m.site == "absent":
                    islanded = None
                    continue
                at = now if m.site == "fresh" else stale_at
                meters[meter.name] = Reading(site_kw, at)
                islanded = Reading(1.0 if m.islanded else 0.0, at)
        frequency = None
        if step.frequency != "missing":
            at = stale_at if step.frequency.startswith("stale") else now
            frequency = Reading(FREQUENCY_HZ[step.frequency], at)
        mining_kw = sum(t.power_kw for n, t in pools.items() if n in self.power_kw)
        return Snapshot(
            price=self.price,
            hashprice_usd_per_ph_day=self.hashprice,
            meters_kw=meters,
            frequency_hz=frequency,
            islanded=islanded,
            pools=pools,
            dispatch_inbox=self._dispatch(step.dispatch, now, mining_kw),
            override_inbox=self._override(step.override, now),
            budget_failsafe=step.misc.budget_failsafe,
        )

    def _dispatch(
        self, event: DispatchEvent | None, now: float, mining_kw: float
    ) -> tuple[DispatchInstruction, ...]:
        if event is None:
            return ()
        kind = DispatchType(event.kind)
        total_kw = sum(p.max_kw for p in self.config.pools)
        mw = round(event.mw_fraction * total_kw / 1000.0, 3)
        start = None if event.start_offset_s is None else now + event.start_offset_s
        end = None if event.end_offset_s is None else now + event.end_offset_s
        fields: dict[str, Any] = {}
        if kind in REDUCTION_TYPES or kind in (DispatchType.CLR, DispatchType.LIMIT):
            fields = {"mw": mw, "start": start, "end": end, "deadline_s": event.deadline_s}
        elif kind is DispatchType.EEA:
            fields = {"level": event.level}
        elif kind is DispatchType.FOUR_CP:
            start = now if start is None else start
            fields = {"start": start, "end": start + (event.end_offset_s or 60.0)}
        elif kind is DispatchType.RECALL:
            fields = {"recall_id": event.recall_id}
        msg = DispatchInstruction(
            id=event.msg_id,
            type=kind,
            notified_at=now,
            received_at=now,
            mining_kw_at_receipt=mining_kw,
            **fields,
        )
        return (msg,)

    def _override(self, event: OverrideEvent | None, now: float) -> tuple[OverrideRequest, ...]:
        if event is None:
            return ()
        self.nonce += 1
        total_kw = sum(p.max_kw for p in self.config.pools)
        mode = event.mode
        request = OverrideRequest(
            mode=mode,  # type: ignore[arg-type]
            limit_kw=event.limit_fraction * total_kw if mode == "limit" else None,
            expires_at=None if mode == "auto" else now + event.ttl_s,
            operator="op",
            reason="property",
            issued_at=now,
            nonce=f"n{self.nonce}",
        )
        return (request,)


# ---------------------------------------------------------------------------------------------
# Running a scenario


@dataclass(frozen=True)
class StepRecord:
    index: int
    now: float
    dt_s: float  # since the previous decision (0 for the first)
    snap: Snapshot
    state: ControllerState  # the state decide() was given
    decision: Decision
    previous: Decision | None
    view: View

    def targets(self) -> dict[str, float]:
        return {n: ps.target_kw for n, ps in self.decision.plan.pools.items()}

    def previous_targets(self) -> dict[str, float] | None:
        if self.previous is None:
            return None
        return {n: ps.target_kw for n, ps in self.previous.plan.pools.items()}

    def where(self) -> str:
        plan = self.decision.plan
        pools = {n: (round(p.target_kw, 6), p.state, p.reason) for n, p in plan.pools.items()}
        return (
            f"step {self.index} at now=T0+{self.now - T0:g}s (dt {self.dt_s:g}s): "
            f"cap={plan.mining_cap_kw!r} binding={plan.binding} envelope={plan.envelope_kw!r} "
            f"gpu_reserved={plan.gpu_reserved_kw!r} failsafe={sorted(plan.failsafe)} "
            f"pools={pools}"
        )


def run(
    scenario: Scenario,
    *,
    config: Config | None = None,
    reload: Callable[[int], Config | None] | None = None,
) -> list[StepRecord]:
    """decide() over the scenario's steps; `reload(k)` may swap the config before step k."""
    cfg = config if config is not None else scenario.site.config
    site = compile_site(cfg)
    world = World.start(cfg, scenario)
    oracle = Oracle(cfg, started_at=T0)
    state = initial_state(T0)
    now = T0
    previous: Decision | None = None
    trace: list[StepRecord] = []
    for k, step in enumerate(scenario.steps):
        if reload is not None:
            new_cfg = reload(k)
            if new_cfg is not None:
                cfg, oracle.config, site = new_cfg, new_cfg, compile_site(new_cfg)
                world = _carry_world(world, new_cfg)
        now += step.dt_s
        world.respond(previous, step.pool_event)
        snap = world.snapshot(step, now)
        view = oracle.observe(snap, now)
        try:
            decision = decide(snap, state, now, site)
        except Exception as exc:
            raise AssertionError(
                f"decide() raised {type(exc).__name__}: {exc} at step {k} (now=T0+{now - T0:g}s)"
            ) from exc
        dt_s = 0.0 if previous is None else now - previous.plan.at
        trace.append(StepRecord(k, now, dt_s, snap, state, decision, previous, view))
        state = decision.next_state
        previous = decision
    return trace


def _carry_world(world: World, config: Config) -> World:
    """After a reload, pools keep their physical state by name; new pools start at 0 kW."""
    site = replace(world.scenario.site, behaviours=_behaviours(config, world))
    carried = World.start(config, replace(world.scenario, site=site))
    for name in carried.power_kw:
        if name in world.power_kw:
            carried.power_kw[name] = world.power_kw[name]
            carried.seq[name] = world.seq[name]
    carried.price = world.price
    carried.hashprice = world.hashprice
    carried.nonce = world.nonce
    return carried


def _behaviours(config: Config, world: World) -> tuple[Behaviour, ...]:
    old = dict(zip((p.name for p in world.config.pools), world.scenario.behaviours, strict=True))
    default = Behaviour(0.0, 1.0, False, 1.0)
    return tuple(old.get(p.name, default) for p in config.pools)


def fail(record: StepRecord, message: str) -> str:
    return f"{message}\n  at {record.where()}"


# ---------------------------------------------------------------------------------------------
# Reading a trace: on/off changes (I7)


def was_on(rec: StepRecord, config: Config) -> dict[str, bool]:
    """Each pool's running state before this decision: the last plan's, or at the first
    decision what telemetry shows (drawing more than the 2% confirm tolerance, I6); a pool not
    heard from counts as running at its max_kw (CONTRACT 7 Startup)."""
    previous = rec.previous_targets()
    if previous is not None:
        return {name: target_kw > 0.0 for name, target_kw in previous.items()}
    out: dict[str, bool] = {}
    for pool in config.pools:
        t = rec.snap.pools.get(pool.name)
        out[pool.name] = t is None or t.power_kw > 0.02 * pool.max_kw
    return out


def last_flips(trace: Sequence[StepRecord], config: Config) -> dict[int, dict[str, float]]:
    """For each step, each pool's last on/off change before it (-inf: never)."""
    last: dict[str, float] = {}
    before: dict[int, dict[str, float]] = {}
    for rec in trace:
        before[rec.index] = dict(last)
        on = was_on(rec, config)
        for name, target_kw in rec.targets().items():
            if (target_kw > 0.0) != on[name]:
                last[name] = rec.now
    return before
