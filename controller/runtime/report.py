"""What a decision tells the world: audit records, acks, retained states, plan and status.

`record` runs before the decision is applied: its records go into the same store transaction
as the state (the audit never lags the commands it explains). `publish` runs after the
commands are on the wire. Both are pure consumers of the decision: they never change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.clock import Clock
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.policies.dispatch import ID_CONFLICT
from controller.core.state import ControllerState, PoolState
from controller.model import OverrideRequest
from controller.runtime import payloads
from controller.runtime.inputs import OverrideOutcome
from controller.runtime.observe import Observer
from controller.runtime.topics import Topics

Publish = Callable[[str, bytes, int, bool], bool]
PlanKey = tuple[object, ...]


class Reporter:
    def __init__(
        self,
        topics: Topics,
        clock: Clock,
        publish: Publish,
        observer: Observer,
        pool_kinds: Mapping[str, str],
    ) -> None:
        self.topics = topics
        self.clock = clock
        self.publish = publish
        self.observer = observer
        self.pool_kinds = pool_kinds  # pool -> its driver kind: the confirm-latency label
        self._override_outcomes = 0  # Inputs.override_outcomes last shown on override/state
        self.status_state = "online"
        self.status_since = clock.time()
        self.ready = False  # no status is published before READY (the last one stands)
        self.failsafe: frozenset[str] = frozenset()
        self._plan_key: PlanKey | None = None

    @property
    def leader(self) -> dict[str, Any]:
        """A pair's leader: {"node", "epoch"} on every document (docs/ha.md 4); empty for a
        single daemon, whose documents are unchanged. The observer's, which stamps events."""
        return self.observer.leader

    # -- before apply: the audit records of one decision ----------------------------------------

    def record(self, decision: Decision, previous: ControllerState, snap: Snapshot) -> None:
        ev = self.observer.event
        for msg in snap.dispatch_inbox:
            ev("dispatch", **payloads.instruction_fields(msg))
        for request in snap.override_inbox:
            ev("override", **payloads.override_fields(request))
        for ack in decision.acks:
            fields = payloads.ack_fields(ack)
            del fields["at"]  # the record's own `at`
            ev("ack", **fields)
            if ack.status == "rejected":
                reason = "id_conflict" if ack.reason == ID_CONFLICT else "unknown_id"
                self.observer.rejected("dispatch", reason, ack.reason, ack.id)
        plan = decision.plan
        key = _plan_key(plan)
        if self._plan_key is None or key[:2] != self._plan_key[:2]:
            ev(
                "decision",
                binding=plan.binding,
                mining_cap_kw=round(plan.mining_cap_kw, 1),
                price_usd_per_mwh=plan.price_usd_per_mwh,
                # why the cap is what it is, stage by stage (Decision.reasons)
                reasons=[payloads.reason_fields(r) for r in decision.reasons],
            )
        self._pool_events(previous.pools, plan)

    def _pool_events(self, before: dict[str, PoolState], plan: Plan) -> None:
        """One `commands` record per decision, plus one per escalation, fault or trip."""
        commands: dict[str, dict[str, object]] = {}
        for name, ps in plan.pools.items():
            old = before.get(name)
            if old is ps:
                continue
            if old is not None and not old.confirmed and ps.confirmed and old.seq == ps.seq:
                self.observer.confirmed(self.pool_kinds[name], plan.at - ps.target_at)
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

    # -- after apply: acks, retained states, plan, status ---------------------------------------

    def publish_decision(
        self, decision: Decision, previous: ControllerState, override: OverrideOutcome
    ) -> None:
        plan, t = decision.plan, self.topics
        for ack in decision.acks:
            self.publish(t.dispatch_ack, payloads.ack(ack, self.leader), 1, False)
        state = decision.next_state
        if state.obligations != previous.obligations:
            listed = payloads.dispatch_state(state.obligations, self.leader)
            self.publish(t.dispatch_state, listed, 1, True)
        if decision.override_changed or override.count != self._override_outcomes:
            self.publish_override_state(state.override, override)
        key = _plan_key(plan)
        if decision.changed or key != self._plan_key:
            self._plan_key = key
            self.publish(t.plan, payloads.plan(plan, self.leader), 1, True)
        self.show_failsafe(plan.failsafe)

    def publish_rejected_ack(self, msg_id: str | None, reason: str) -> None:
        """Every instruction is answered, a rejected one too (CONTRACT 2.2)."""
        doc = payloads.rejected_ack(msg_id, reason, self.clock.time(), self.leader)
        self.observer.publish_after_audit(self.topics.dispatch_ack, doc)

    def show_failsafe(self, failsafe: frozenset[str]) -> None:
        if failsafe != self.failsafe:
            self.observer.event("failsafe", active=sorted(failsafe), was=sorted(self.failsafe))
            self.failsafe = failsafe
            self.set_status("failsafe" if failsafe else "online")

    def set_status(self, state: str) -> None:
        if state != self.status_state:
            self.status_state = state
            self.status_since = self.clock.time()
        self.publish_status()

    def publish_status(self) -> None:
        if not self.ready:
            return
        doc = payloads.status(self.status_state, self.status_since, self.failsafe, self.leader)
        self.publish(self.topics.status, doc, 1, True)

    def publish_override_state(
        self, current: OverrideRequest | None, outcome: OverrideOutcome
    ) -> None:
        """override/state: the active override and the last request's outcome."""
        self._override_outcomes = outcome.count
        doc = payloads.override_state(current, outcome.error, self.leader)
        self.publish(self.topics.override_state, doc, 1, True)

    def publish_plan(self, plan: Plan) -> None:
        self._plan_key = _plan_key(plan)
        self.publish(self.topics.plan, payloads.plan(plan, self.leader), 1, True)


def _plan_key(plan: Plan) -> PlanKey:
    return (
        round(plan.mining_cap_kw),
        plan.binding,
        plan.price_usd_per_mwh,
        plan.failsafe,
        round(plan.gpu_reserved_kw),
    )
