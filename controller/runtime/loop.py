"""The control loop: events trigger a decision at once, the tick sweeps (DESIGN point 4).

One decision: freeze the inputs, decide() (pure, timed against the budget), apply the plan as
a diff, then publish what changed. The loop is the only writer of the controller state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.clock import Clock
from controller.config import Config
from controller.core.decide import decide
from controller.core.plan import Decision, Plan
from controller.core.state import ControllerState, PoolState, initial_state
from controller.runtime import payloads
from controller.runtime.apply import Applier, ApplyReport
from controller.runtime.inputs import Inputs
from controller.runtime.observe import Observer
from controller.runtime.topics import Topics

BUDGET_STRIKES = 3  # decisions in a row over decision_budget_ms before the failsafe


@dataclass(slots=True)
class LoopStats:
    decisions: int = 0
    over_budget_in_a_row: int = 0
    last_decision_s: float = 0.0
    last_report: ApplyReport = field(default_factory=ApplyReport)


class ControlLoop:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        inputs: Inputs,
        applier: Applier,
        publish: Callable[[str, bytes, int, bool], bool],
        observer: Observer,
    ) -> None:
        self.config = config
        self.clock = clock
        self.inputs = inputs
        self.applier = applier
        self.publish = publish
        self.observer = observer
        self.topics = Topics.of(config)
        self.state: ControllerState = initial_state(clock.time())
        self.plan: Plan | None = None
        self.stats = LoopStats()
        self.status_state = "online"
        self.status_since = clock.time()
        self.frozen = False  # set on shutdown with `hold`: no decision touches a device again
        self.first_decision = asyncio.Event()
        self.on_cycle: Callable[[], None] | None = None  # the systemd watchdog, from the loop
        self._plan_key: tuple[object, ...] | None = None
        self._failsafe: frozenset[str] = frozenset()
        self._drivers = {p.name: p.driver for p in config.pools}

    async def run(self) -> None:
        tick_s = self.config.control.tick_s
        next_tick = self.clock.monotonic()
        while True:
            timeout = max(0.0, next_tick - self.clock.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inputs.wake.wait(), timeout)
            if self.frozen:
                return
            await self.step()
            if self.on_cycle is not None:
                self.on_cycle()
            if self.clock.monotonic() >= next_tick:
                next_tick = self.clock.monotonic() + tick_s

    async def step(self) -> Decision:
        trigger = self.inputs.take_trigger()
        now = self.clock.time()
        budget_failsafe = self.stats.over_budget_in_a_row >= BUDGET_STRIKES
        snap = self.inputs.snapshot(budget_failsafe)
        started = self.clock.monotonic()
        decision = decide(snap, self.state, now, self.config)
        elapsed_s = self.clock.monotonic() - started
        self._account_budget(elapsed_s)
        previous = self.state
        self.state = decision.next_state
        self.plan = decision.plan
        report = await self.applier.apply(decision.plan)
        self.stats.last_report = report
        self.observer.decided(decision, snap, elapsed_s, trigger, report)
        if self.inputs.feed_seen_at:
            self.observer.feeds_seen(self.inputs.feed_seen_at)
            self.inputs.feed_seen_at = {}
        self._publish_changes(decision, previous)
        self.first_decision.set()
        return decision

    def _account_budget(self, elapsed_s: float) -> None:
        self.stats.decisions += 1
        self.stats.last_decision_s = elapsed_s
        if elapsed_s * 1000.0 > self.config.control.decision_budget_ms:
            self.stats.over_budget_in_a_row += 1
        else:
            self.stats.over_budget_in_a_row = 0

    def _publish_changes(self, decision: Decision, previous: ControllerState) -> None:
        plan, t = decision.plan, self.topics
        for ack in decision.acks:
            self.publish(t.dispatch_ack, payloads.ack(ack), 1, False)
        if decision.next_state.obligations != previous.obligations:
            self.publish(
                t.dispatch_state, payloads.dispatch_state(decision.next_state.obligations), 1, True
            )
        if decision.next_state.override != previous.override or self.inputs.override_changed:
            self.inputs.override_changed = False
            self.publish_override_state()
        key = (
            round(plan.mining_cap_kw),
            plan.binding,
            plan.price_usd_per_mwh,
            plan.failsafe,
            round(plan.gpu_reserved_kw),
        )
        if decision.changed or key != self._plan_key:
            if self._plan_key is None or key[:2] != self._plan_key[:2]:
                self.observer.event(
                    "decision",
                    binding=plan.binding,
                    mining_cap_kw=round(plan.mining_cap_kw, 1),
                    price_usd_per_mwh=plan.price_usd_per_mwh,
                )
            self._plan_key = key
            self.publish(t.plan, payloads.plan(plan), 1, True)
            self._pool_events(previous.pools, plan)
        if plan.failsafe != self._failsafe:
            self.observer.event(
                "failsafe", active=sorted(plan.failsafe), was=sorted(self._failsafe)
            )
            self._failsafe = plan.failsafe
            self.set_status("failsafe" if plan.failsafe else "online")

    def _pool_events(self, before: dict[str, PoolState], plan: Plan) -> None:
        """One `commands` audit record per decision, plus one per escalation, fault or trip."""
        commands: dict[str, dict[str, object]] = {}
        for name, ps in plan.pools.items():
            old = before.get(name)
            if old is ps:
                continue
            if old is not None and not old.confirmed and ps.confirmed and old.seq == ps.seq:
                self.observer.confirmed(self._drivers[name], plan.at - ps.target_at)
            if old is None or old.seq != ps.seq:
                commands[name] = {
                    "seq": ps.seq,
                    "target_kw": round(ps.target_kw, 3),
                    "reason": ps.reason,
                }
            if (
                old is not None
                and old.state != ps.state
                and ps.state in ("escalated", "faulted", "tripped")
            ):
                self.observer.event(ps.state, pool=name, target_kw=round(ps.target_kw, 3))
        if commands:
            self.observer.event("commands", binding=plan.binding, pools=commands)

    def set_status(self, state: str) -> None:
        if state != self.status_state:
            self.status_state = state
            self.status_since = self.clock.time()
        self.publish_status()

    def publish_status(self) -> None:
        doc = payloads.status(self.status_state, self.status_since, self._failsafe)
        self.publish(self.topics.status, doc, 1, True)

    def publish_override_state(self) -> None:
        doc = payloads.override_state(self.state.override, self.inputs.override_error)
        self.publish(self.topics.override_state, doc, 1, True)

    def republish_retained(self) -> None:
        """After any (re)connect: every retained topic we own, cmds with the same seq."""
        self.publish_status()
        self.publish_override_state()
        self.publish(
            self.topics.dispatch_state, payloads.dispatch_state(self.state.obligations), 1, True
        )
        if self.plan is not None:
            self.publish(self.topics.plan, payloads.plan(self.plan), 1, True)
        self.applier.republish_commands(self.plan)
