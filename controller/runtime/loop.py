"""The control loop: events trigger a decision at once, the tick sweeps (DESIGN point 4).

One decision: freeze the inputs, decide() (pure, timed against the budget), write what changed
to the state store (durable before any command it causes), apply the plan as a diff, then
publish. The loop is the only writer of the controller state.

Nothing stops it (I10, CONTRACT 7): every stage is contained, logged with its traceback and
counted in `curtaild_internal_errors_total{where}`. A decision that raises counts as over budget
and is retried without the inputs it took (a poison message is then rejected, never lost
silently); while decisions keep failing for `confirm_timeout_s`, every pool is commanded to 0
through the last good plan's drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from controller.adapters.store import AsyncStateStore, AuditRecord, StoreDelta
from controller.clock import Clock
from controller.config import Config
from controller.core.decide import decide
from controller.core.failsafe import curtail_all, curtail_plan
from controller.core.plan import Decision, Plan, Snapshot
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, initial_state
from controller.ha.replica import DeposedError, Replica
from controller.logs import get
from controller.model import OverrideRequest
from controller.runtime import payloads, persist
from controller.runtime.apply import Applier, ApplyReport
from controller.runtime.inputs import Inputs, Trigger
from controller.runtime.observe import Observer
from controller.runtime.report import Reporter
from controller.runtime.topics import Topics

BUDGET_STRIKES = 3  # decisions in a row over decision_budget_ms before the failsafe
# A store write slower than this (a hung disk) no longer holds the commands back.
STORE_WRITE_WAIT_S = 0.5
log = get("curtaild")


@dataclass(slots=True)
class LoopStats:
    decisions: int = 0
    failed: int = 0
    over_budget_in_a_row: int = 0
    slow_writes: int = 0
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
        store: AsyncStateStore | None = None,
    ) -> None:
        self.config = config
        self.site: SiteModel = compile_site(config)  # recompiled by `prepare` on reload
        self.clock = clock
        self.inputs = inputs
        self.applier = applier
        self.observer = observer
        self.store = store
        self.topics = Topics.of(config)
        self.report = Reporter(self.topics, clock, publish, observer, applier.pool_kinds())
        self.state: ControllerState = initial_state(clock.time())
        self.plan: Plan | None = None
        self.stats = LoopStats()
        self.frozen = False  # set on shutdown with `hold`: no decision touches a device again
        self.first_decision = asyncio.Event()
        self.on_cycle: Callable[[], None] | None = None  # the systemd watchdog, from the loop
        self._failing_since: float | None = None
        self._emergency_done = False
        # An active/standby pair's leader: the control state also goes to etcd, fenced by the
        # epoch, before the commands it causes (docs/ha.md 5); `on_deposed(why)` when refused.
        self.replica: Replica | None = None
        self.on_deposed: Callable[[str], None] | None = None
        self._flush: asyncio.Task[None] | None = None
        # What the state store holds (None: not known, the next write rewrites it all), and the
        # overrides whose nonces no successful write has kept yet.
        self._stored: ControllerState | None = self.state
        self._unsaved_overrides: tuple[OverrideRequest, ...] = ()
        observer.on_pending = self._audit_pending

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        tick_s = self.config.control.tick_s
        next_tick = self.clock.monotonic()
        while True:
            timeout = max(0.0, next_tick - self.clock.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inputs.wake.wait(), timeout)
            if self.frozen:
                return
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - step contains its stages; this is the backstop
                self.observer.internal_error("decision")
            if self.on_cycle is not None:
                self.on_cycle()
            if self.clock.monotonic() >= next_tick:
                tick_s = self.config.control.tick_s  # a reload may change it
                next_tick = self.clock.monotonic() + tick_s

    async def step(self) -> Decision | None:
        """One decision carried out; None when decide() failed (the failsafe takes over)."""
        trigger = self.inputs.take_trigger()
        now = self.clock.time()
        snap = self.inputs.snapshot(self.stats.over_budget_in_a_row >= BUDGET_STRIKES)
        started = self.clock.monotonic()
        decision: Decision | None
        try:
            decision = decide(snap, self.state, now, self.site)
        except Exception:  # noqa: BLE001 - a bug in the core must not stop control (I10)
            self.observer.internal_error("decision")
            decision, snap = await self._after_failure(snap, now)
        if decision is None:
            return None
        elapsed_s = self.clock.monotonic() - started
        self._account_budget(elapsed_s)
        self._failing_since, self._emergency_done = None, False
        self.inputs.consume(snap)
        await self._carry_out(decision, snap, elapsed_s, trigger)
        return decision

    async def _carry_out(
        self, decision: Decision, snap: Snapshot, elapsed_s: float, trigger: Trigger | None
    ) -> None:
        previous = self.state
        self.state, self.plan = decision.next_state, decision.plan
        self.observer.hold()
        try:
            self.report.record(decision, previous, snap)
        except Exception:  # noqa: BLE001 - reporting must never stop control
            self.observer.internal_error("events")
        waiting = self.observer.unwritten  # records kept earlier go with this write
        if not await self._persist(decision.next_state, snap):
            return  # deposed: another node leads, nothing more goes out from here
        report = await self._apply(decision.plan)
        self.observer.release()
        self.observer.release_written(waiting)
        try:
            self.report.publish_decision(decision, previous, self.inputs.override_last)
        except Exception:  # noqa: BLE001
            self.observer.internal_error("publish")
        try:
            self.observer.decided(decision, snap, elapsed_s, trigger, report)
            self.observer.feeds_seen(self.inputs.feed_seen_at)
        except Exception:  # noqa: BLE001
            self.observer.internal_error("metrics")
        self.first_decision.set()

    async def _persist(self, after: ControllerState, snap: Snapshot) -> bool:
        """The change, durable before the commands it causes (CONTRACT 7). A store that fails
        does not hold a command back: lowering for safety matters more than the record. What
        a failed write did not keep is carried into the next one: the delta is taken from what
        the store holds, not from the last decision. False: a pair's replica refused the
        write (deposed), and no command may follow."""
        if self.store is None:
            return True
        self._unsaved_overrides += snap.override_inbox
        audit = self.observer.take_audit()
        try:
            delta = persist.delta(
                self._stored,
                after,
                overrides_accepted=self._unsaved_overrides,
                nonce_keep_s=self.inputs.nonce_keep_s,
                audit=audit,
            )
        except Exception:  # noqa: BLE001 - a bug: counted, and control goes on
            self.observer.return_audit(audit)
            self.observer.internal_error("store")
            return True
        if delta.empty():
            return True
        # A pair's replica is written beside the local store, not after it: the commands wait
        # for the slower of the two, not for their sum.
        replicating = None
        if self.replica is not None:
            replicating = asyncio.ensure_future(self.replica.write(delta, self.clock.time()))
        if await self._write_local(delta, audit):
            self._stored, self._unsaved_overrides = after, ()
        return await self._replicated(replicating)

    async def _write_local(self, delta: StoreDelta, audit: list[AuditRecord]) -> bool:
        """The local store's write; False when it failed (the next delta carries it)."""
        assert self.store is not None
        # Shielded: a write that outlasts the wait still completes (the store's one worker
        # keeps writes in order); the commands do not wait on a hung disk any longer.
        write = asyncio.ensure_future(self.store.write(delta))
        try:
            await asyncio.wait_for(asyncio.shield(write), STORE_WRITE_WAIT_S)
        except TimeoutError:
            self.stats.slow_writes += 1
            write.add_done_callback(lambda done: self._late_write_done(done, audit))
            log.warning(
                "state store write still running; commands go out", wait_s=STORE_WRITE_WAIT_S
            )
        except Exception:  # noqa: BLE001 - disk full, a bug: counted, and control goes on
            self.observer.return_audit(audit)
            self.observer.internal_error("store")
            return False
        return True

    async def _replicated(self, write: asyncio.Future[None] | None) -> bool:
        """The pair's replica write (None for a single daemon) done or left running after
        STORE_WRITE_WAIT_S; False: deposed."""
        if write is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(write), STORE_WRITE_WAIT_S)
        except TimeoutError:  # etcd slow: commands go out; a late refusal still deposes
            write.add_done_callback(self._late_replica_done)
        except DeposedError as exc:
            self._deposed(str(exc))
            return False
        except Exception:  # noqa: BLE001 - a bug: counted, and control goes on
            self.observer.internal_error("replica")
        return True

    def _late_replica_done(self, write: asyncio.Future[None]) -> None:
        exc = None if write.cancelled() else write.exception()
        if isinstance(exc, DeposedError):
            self._deposed(str(exc))
        elif exc is not None:
            self.observer.internal_error("replica", exc)

    def _deposed(self, why: str) -> None:
        self.frozen = True  # no decision touches a device again
        if self.on_deposed is not None:
            self.on_deposed(why)

    def _audit_pending(self) -> None:
        """An event record kept outside a decision: to the store now, a burst in one write."""
        if self.store is None or (self._flush is not None and not self._flush.done()):
            return
        try:
            self._flush = asyncio.get_running_loop().create_task(self._flush_audit())
        except RuntimeError:  # no loop running (a test without one): the next decision writes it
            self._flush = None

    async def _flush_audit(self) -> None:
        observer = self.observer
        await asyncio.sleep(0)  # let a burst of rejections gather into one transaction
        while observer.has_audit or observer.unwritten:
            waiting = observer.unwritten
            records = observer.take_audit()
            try:
                if records and self.store is not None:
                    write = self.store.write(StoreDelta(audit=records))
                    await asyncio.wait_for(asyncio.shield(write), STORE_WRITE_WAIT_S)
            except TimeoutError:
                self.stats.slow_writes += 1
            except Exception:  # noqa: BLE001
                observer.return_audit(records)
                observer.internal_error("store")
                observer.release_written(waiting)  # a failing store must not silence answers
                return
            observer.release_written(waiting)

    def _late_write_done(self, write: asyncio.Future[None], audit: list[AuditRecord]) -> None:
        exc = None if write.cancelled() else write.exception()
        if exc is not None:
            # Later writes took this one as done: the next one rewrites the whole state.
            self._stored = None
            self.observer.return_audit(audit)
            self.observer.internal_error("store", exc)

    async def _apply(self, plan: Plan) -> ApplyReport:
        try:
            report = await self.applier.apply(plan)
        except Exception:  # noqa: BLE001
            self.observer.internal_error("apply")
            return ApplyReport()
        self.stats.last_report = report
        for exc in report.errors:
            self.observer.internal_error("apply", exc)
        return report

    async def _after_failure(self, snap: Snapshot, now: float) -> tuple[Decision | None, Snapshot]:
        """decide() raised. Retry without this decision's inbox: when that works, the inbox
        held the cause and is rejected (answered, counted, recorded). Otherwise the failure
        counts as over budget and, after confirm_timeout_s of failures, every pool goes to 0."""
        self.stats.failed += 1
        if snap.dispatch_inbox or snap.override_inbox:
            bare = replace(snap, dispatch_inbox=(), override_inbox=())
            try:
                decision = decide(bare, self.state, now, self.site)
            except Exception:  # noqa: BLE001
                self.observer.internal_error("decision")
            else:
                self._reject_poison(snap)
                return decision, bare
        self.stats.over_budget_in_a_row += 1
        self.observer.over_budget()
        if self._failing_since is None:
            self._failing_since = now
        self.report.show_failsafe(self.report.failsafe | {"decision_budget"})
        if not self._emergency_done and now - self._failing_since >= self._timeout_s:
            self._emergency_done = True
            await self.curtail_everything(now, frozenset({"decision_budget"}))
        return None, snap

    def _reject_poison(self, snap: Snapshot) -> None:
        self.inputs.consume(snap)
        for msg in snap.dispatch_inbox:
            self.observer.rejected(
                "dispatch", "internal_error", "the decision failed on it", msg.id
            )
            self.report.publish_rejected_ack(msg.id, "internal_error")
        if snap.override_inbox:
            for _request in snap.override_inbox:
                self.observer.rejected("override", "internal_error", "the decision failed on it")
            self.inputs.set_override_outcome("internal_error: the decision failed on it")

    async def curtail_everything(self, now: float, failsafe: frozenset[str]) -> Plan:
        """Every pool commanded to 0 by the last good plan's drivers, without decide()."""
        previous = self.state
        self.state = curtail_all(previous, self.site, now)
        self.plan = curtail_plan(self.plan, self.state, now, failsafe)
        self.observer.event("curtail_all", failsafe=sorted(failsafe))
        if await self._persist(self.state, Snapshot()):
            await self._apply(self.plan)
        try:
            self.report.publish_plan(self.plan)
        except Exception:  # noqa: BLE001
            self.observer.internal_error("publish")
        return self.plan

    @property
    def _timeout_s(self) -> float:
        return self.config.control.confirm_timeout_s

    def _account_budget(self, elapsed_s: float) -> None:
        self.stats.decisions += 1
        self.stats.last_decision_s = elapsed_s
        if elapsed_s * 1000.0 > self.config.control.decision_budget_ms:
            self.stats.over_budget_in_a_row += 1
            self.observer.over_budget()
        else:
            self.stats.over_budget_in_a_row = 0

    # -- retained state ------------------------------------------------------------------------

    def restore(self, state: ControllerState) -> None:
        """The state a restart continues from (persist.restore); nothing is sent for it."""
        self.state = self._stored = state
        self.applier.restore(state.pools)

    def republish_retained(self) -> None:
        """After any (re)connect: every retained topic we own, cmds with the same seq."""
        r = self.report
        r.publish_status()
        r.publish_override_state(self.state.override, self.inputs.override_last)
        listed = payloads.dispatch_state(self.state.obligations, r.leader)
        r.publish(self.topics.dispatch_state, listed, 1, True)
        if self.plan is not None:
            r.publish_plan(self.plan)
        self.applier.republish_commands(self.state.pools, self.clock.time())

    def prepare(self, config: Config) -> Callable[[], None]:
        """Compiled here, before any component changes: a failure leaves the running site."""
        site = compile_site(config)

        def commit() -> None:
            self.config, self.site = config, site
            # The memo was made with the old site (decide() would not use it: memo.py); it
            # goes now rather than holding the old site's records until the next decision.
            self.state = replace(self.state, memo=None)

        return commit
