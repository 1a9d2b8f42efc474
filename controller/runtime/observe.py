"""Everything the loop reports: metrics, the `events` audit trail and logs on transitions.

Every event record (CONTRACT 2.5) goes to the `events` topic and to the audit buffer that the
loop writes into the state store with its next transaction. While a decision is being applied
the loop holds the records (`hold`), writes them with the decision's state, and publishes them
after the commands, so that the audit never lags the commands it explains and the commands are
not queued behind it. Logging stays off the hot path: rejected input is logged once per feed and
reason per minute. A failure here is contained and counted: reporting never stops control.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from controller.adapters.metrics import Metrics
from controller.adapters.store import AuditRecord
from controller.clock import Clock
from controller.config import Config
from controller.core.plan import Decision, Snapshot
from controller.drivers.health import HealthTransition
from controller.logs import get
from controller.runtime import payloads
from controller.runtime.apply import ApplyReport
from controller.runtime.inputs import Trigger
from controller.runtime.metrics_view import MetricsView
from controller.runtime.topics import Topics

REJECT_LOG_EVERY_S = 60.0
# Records waiting for the store: a store that keeps failing must cost records, not memory.
MAX_AUDIT_BACKLOG = 100_000
log = get("curtaild")


class Observer:
    def __init__(
        self,
        topics: Topics,
        clock: Clock,
        metrics: Metrics,
        publish: Callable[[str, bytes, int, bool], bool],
        config: Config | None = None,
    ) -> None:
        self.topics = topics
        self.clock = clock
        self.metrics = metrics
        self.view = MetricsView(metrics, config)  # decisions -> gauges, changes only
        self._feeds_exported: dict[str, float] = {}
        self.publish = publish
        self._reject_logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        self._audit: deque[AuditRecord] = deque(maxlen=MAX_AUDIT_BACKLOG)
        self._held: list[bytes] | None = None
        self._reporting_error = False
        # A pair's leader: {"node", "epoch"} on every event and document (docs/ha.md 4);
        # empty for a single daemon.
        self.leader: dict[str, Any] = {}
        # Called when a record is kept outside a decision (a rejection, a device going down):
        # the loop writes it to the store at once, then `release_written` publishes it, so that
        # nothing is seen on the broker that the audit trail could miss.
        self.on_pending: Callable[[], None] | None = None
        self._unwritten: list[tuple[str, bytes]] = []
        # (trigger, first command s, last command s) after the event's arrival: the demo's
        # reaction-time report reads these
        self.reactions: deque[tuple[str, float, float]] = deque(maxlen=256)

    # -- the audit trail -----------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> None:
        """One audit record: kept for the store, published on the events topic, logged."""
        if not self._record(kind, fields):
            return
        if kind == "commands":
            log.debug(kind, **fields)
        else:
            log.info(kind, **fields)

    def _record(self, kind: str, fields: dict[str, Any]) -> bool:
        try:
            at = self.clock.time()
            payload = payloads.event(kind, at, **{**fields, **self.leader})
            self._audit.append(AuditRecord(at, kind, payload.decode()))
            if self._held is not None:
                self._held.append(payload)
            else:
                self.publish_after_audit(self.topics.events, payload)
        except Exception:  # noqa: BLE001 - reporting must never stop control (I10)
            self.internal_error("events")
            return False
        return True

    def hold(self) -> None:
        """Keep event records back until `release` (the loop applies a decision meanwhile)."""
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for payload in held:
            self.publish(self.topics.events, payload, 1, False)

    def publish_after_audit(self, topic: str, payload: bytes) -> None:
        """Publish once the audit records kept so far are in the store (at once without one)."""
        if self.on_pending is None:
            self.publish(topic, payload, 1, False)
            return
        self._unwritten.append((topic, payload))
        self.on_pending()

    @property
    def unwritten(self) -> int:
        """Publishes waiting for a store write."""
        return len(self._unwritten)

    def release_written(self, count: int) -> None:
        """The store write that `on_pending` asked for is done (or failed): publish the first
        `count` waiting messages (those whose records it carried)."""
        released, self._unwritten = self._unwritten[:count], self._unwritten[count:]
        for topic, payload in released:
            self.publish(topic, payload, 1, False)

    @property
    def has_audit(self) -> bool:
        return bool(self._audit)

    def take_audit(self) -> list[AuditRecord]:
        records = list(self._audit)
        self._audit.clear()
        return records

    def return_audit(self, records: list[AuditRecord]) -> None:
        """Records a failed store write did not keep: first in line for the next one."""
        self._audit.extendleft(reversed(records))

    # -- faults --------------------------------------------------------------------------------

    def over_budget(self) -> None:
        """A decision overran `control.decision_budget_ms` or raised (the budget fail-safe's
        strikes): counted, so the alert follows the configured budget, not a bucket bound."""
        try:
            self.metrics.decision_over_budget()
        except Exception:
            log.exception("internal error while counting a decision over budget")

    def internal_error(self, where: str, exc: BaseException | None = None) -> None:
        """Log the traceback (of `exc`, or of the exception being handled), count it, record it."""
        log.error(
            "internal error contained; the daemon goes on",
            where=where,
            exc_info=exc if exc is not None else True,
        )
        try:
            self.metrics.internal_error(where)
        except Exception:
            log.exception("internal error while counting an internal error")
        if self._reporting_error or where == "events":
            return
        self._reporting_error = True
        try:
            self.event("internal_error", where=where)
        finally:
            self._reporting_error = False

    # -- one decision --------------------------------------------------------------------------

    def decided(
        self,
        decision: Decision,
        snap: Snapshot,
        elapsed_s: float,
        trigger: Trigger | None,
        report: ApplyReport,
    ) -> None:
        self.metrics.observe_decision(elapsed_s)
        self.view.update_from_decision(decision)
        self.view.update_from_snapshot(snap)
        for driver, n in report.by_driver.items():
            self.metrics.command_sent(driver, n)
        for driver, n in report.failures_by_driver.items():
            self.metrics.command_failed(driver, n)
        if trigger is not None and report.first_at is not None and report.last_at is not None:
            first_s = report.first_at - trigger.at
            last_s = report.last_at - trigger.at
            self.metrics.observe_event_to_command(trigger.name, last_s)
            self.reactions.append((trigger.name, first_s, last_s))

    def rejected(self, feed: str, reason: str, detail: str, msg_id: str | None = None) -> None:
        """I10: count, record (with the message's id when it had one), log at most once a
        minute per feed and reason."""
        self.metrics.message_rejected(feed, reason)
        fields: dict[str, Any] = {"feed": feed, "reason": reason, "detail": detail}
        if msg_id is not None:
            fields["id"] = msg_id
        self._record("rejected", fields)
        key = (feed, reason)
        now = self.clock.monotonic()
        last = self._reject_logged.get(key)
        if last is not None and now - last < REJECT_LOG_EVERY_S:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._reject_logged[key] = now
        more = self._suppressed.pop(key, 0)
        log.warning(
            "input rejected", feed=feed, reason=reason, detail=detail, suppressed_since_last=more
        )

    def feeds_seen(self, seen_at: Mapping[str, float]) -> None:
        """The feeds' last-seen times (Inputs owns them): exported where they moved."""
        exported = self._feeds_exported
        for feed, at in seen_at.items():
            if exported.get(feed) != at:
                exported[feed] = at
                self.metrics.feed_seen(feed, at)

    def confirmed(self, driver: str, seconds: float) -> None:
        self.metrics.observe_command_confirm(driver, seconds)

    def protected_refused(self, pdu: str) -> None:
        self.metrics.protected_write_refused()
        self.event("protected_write_refused", pdu=pdu)
        log.error("write to protected PDU refused (I1)", pdu=pdu)

    def device_transition(self, change: HealthTransition) -> None:
        self.metrics.set_device_up(change.device, change.up)
        if change.up:
            self.event("device_up", device=change.device)
        else:
            self.event(
                "device_down",
                device=change.device,
                error=change.error,
                failures=change.consecutive_failures,
            )
