"""The plant under a scenario (devices and feeds that answer decide()'s plans), and the run of
a scenario through it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from controller.config import Config
from controller.core.plan import Decision, Snapshot
from controller.core.state import ControllerState
from controller.model import (
    AWARD_PRODUCTS,
    REDUCTION_TYPES,
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
    PoolTelemetry,
)
from controller.sim.plant import T0, Plant
from tests.unit.factories import acting_price, protected_pdu_names
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
    """The plant under a scenario: its pools behave as drawn, its feeds bring each step."""

    config: Config
    scenario: Scenario
    plant: Plant
    price: ActingPrice | None = None
    hashprice: float | None = None  # live hashprice: the last value received stays
    nonce: int = 0

    @classmethod
    def start(cls, config: Config, scenario: Scenario) -> World:
        pools = config.pools
        plant = Plant(config, T0)
        for p, b in zip(pools, scenario.behaviours, strict=True):
            plant.power_kw[p.name] = b.initial_fraction * p.max_kw
            plant.available[p.name] = b.available
            if b.follow == 0.0:
                plant.stuck.add(p.name)
            else:
                plant.follow_share[p.name] = b.follow
            if b.ack_only:
                plant.ack_only.add(p.name)
        return cls(config=config, scenario=scenario, plant=plant)

    def respond(self, previous: Decision | None, event: tuple[int, str] | None) -> None:
        """The devices act on the last plan during the step's interval."""
        plant, pools = self.plant, self.config.pools
        if event is not None:
            pool = pools[event[0] % len(pools)]
            name, kind = pool.name, event[1]
            if kind in ("offline", "online"):
                _mark(plant.offline, name, kind == "offline")
            elif kind in ("stuck", "unstuck"):
                _mark(plant.stuck, name, kind == "stuck")
            elif kind in ("absent", "present"):  # its reports are lost; it still acts
                _mark(plant.muted, name, kind == "absent")
            elif kind == "silent":  # its last report stays, ageing; it acts on nothing
                if name not in plant.silent:
                    plant.go_silent(name)
            elif kind == "heard":
                plant.silent.pop(name, None)
            elif kind == "overdraw":  # the largest draw the pool feed accepts (CONTRACT 2.4)
                plant.power_kw[name] = 10.0 * pool.max_kw
                plant.stuck.add(name)
            else:
                plant.available[name] = {"half": 0.5, "zero": 0.0, "full": 1.0}[kind[10:]]
        if previous is not None:
            plant.apply(previous.plan)

    def snapshot(self, step: StepInput) -> Snapshot:
        cfg, plant, m = self.config, self.plant, step.meters
        now = plant.now
        stale_s = cfg.control.meter_stale_s + 1.0
        if step.price is not None:
            received = now - cfg.feeds.price_stale_s - 1.0 if step.misc.price_received_late else now
            self.price = acting_price(step.price, received)
        if step.misc.hashprice is not None:
            self.hashprice = step.misc.hashprice
        plant.tenant_kw = {t.name: t.firm_kw * m.gpu_factor for t in cfg.gpu_tenants}
        plant.extra_aux_kw = m.extra_aux_kw
        plant.islanded = m.islanded
        plant.frequency_hz = FREQUENCY_HZ.get(step.frequency)
        snap = plant.observe(
            price=self.price,
            hashprice=self.hashprice,
            budget_failsafe=step.misc.budget_failsafe,
            site_age_s=_age(m.site, stale_s),
            gpu_age_s=_age(m.gpu, stale_s),
            frequency_age_s=stale_s if step.frequency.startswith("stale") else 0.0,
        )
        pools = dict(snap.pools)
        if self.scenario.ghost_telemetry:
            for name in [*protected_pdu_names(cfg), "ghost", *(mt.name for mt in cfg.meters)]:
                pools[name] = PoolTelemetry(5000.0, 5000.0, True, 10**6, now)
        mining_kw = sum(t.power_kw for t in snap.pools.values())
        return replace(
            snap,
            pools=pools,
            dispatch_inbox=self._dispatch(step.dispatch, now, mining_kw),
            override_inbox=self._override(step.override, now),
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
        elif kind is DispatchType.AWARD:
            start = now if start is None else start
            end = start + (event.end_offset_s or 900.0)
            product = AWARD_PRODUCTS[event.level % len(AWARD_PRODUCTS)]
            fields = {"mw": mw, "start": start, "end": end, "product": product}
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


def _mark(names: set[str], name: str, faulty: bool) -> None:
    if faulty:
        names.add(name)
    else:
        names.discard(name)


def _age(reading: str, stale_s: float) -> float | None:
    """A meter's reading age: fresh, stale, or absent (None)."""
    return {"fresh": 0.0, "stale": stale_s}.get(reading)


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
    world = World.start(cfg, scenario)
    oracle = Oracle(cfg, started_at=T0)
    previous: Decision | None = None
    trace: list[StepRecord] = []
    for k, step in enumerate(scenario.steps):
        if reload is not None:
            new_cfg = reload(k)
            if new_cfg is not None:
                cfg, oracle.config = new_cfg, new_cfg
                world = _carry_world(world, new_cfg)
        plant = world.plant
        plant.now += step.dt_s
        now, state = plant.now, plant.state
        world.respond(previous, step.pool_event)
        snap = world.snapshot(step)
        view = oracle.observe(snap, now)
        try:
            decision = plant.decide(snap)
        except Exception as exc:
            raise AssertionError(
                f"decide() raised {type(exc).__name__}: {exc} at step {k} (now=T0+{now - T0:g}s)"
            ) from exc
        dt_s = 0.0 if previous is None else now - previous.plan.at
        trace.append(StepRecord(k, now, dt_s, snap, state, decision, previous, view))
        plant.keep(decision)
        previous = decision
    return trace


def _carry_world(world: World, config: Config) -> World:
    """After a reload, pools keep their physical state by name; new pools start at 0 kW."""
    site = replace(world.scenario.site, behaviours=_behaviours(config, world))
    carried = World.start(config, replace(world.scenario, site=site))
    old, new = world.plant, carried.plant
    for name in new.power_kw:
        if name in old.power_kw:
            new.power_kw[name] = old.power_kw[name]
            new.applied_seq[name] = old.applied_seq[name]
    new.now, new.state, new.last = old.now, old.state, old.last
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
