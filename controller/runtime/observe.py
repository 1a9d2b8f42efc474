"""Everything the loop reports: metrics, the `events` audit topic and logs on transitions.

Logging stays off the hot path: a decision updates metrics (cheap, cached children) and logs
only when something changed; rejected input is logged once per feed and reason per minute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from controller.adapters.metrics import Metrics
from controller.clock import Clock
from controller.core.plan import Decision, Snapshot
from controller.drivers.health import HealthTransition
from controller.logs import get
from controller.runtime import payloads
from controller.runtime.apply import ApplyReport
from controller.runtime.inputs import Trigger
from controller.runtime.topics import Topics

REJECT_LOG_EVERY_S = 60.0
log = get("curtaild")


class Observer:
    def __init__(
        self,
        topics: Topics,
        clock: Clock,
        metrics: Metrics,
        publish: Callable[[str, bytes, int, bool], bool],
    ) -> None:
        self.topics = topics
        self.clock = clock
        self.metrics = metrics
        self.publish = publish
        self._reject_logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        # (trigger, first command s, last command s) after the event's arrival: the demo's
        # reaction-time report reads these
        self.reactions: deque[tuple[str, float, float]] = deque(maxlen=256)

    def decided(
        self,
        decision: Decision,
        snap: Snapshot,
        elapsed_s: float,
        trigger: Trigger | None,
        report: ApplyReport,
    ) -> None:
        self.metrics.observe_decision(elapsed_s)
        self.metrics.update_from_decision(decision)
        self.metrics.update_from_snapshot(snap)
        for driver, n in report.by_driver.items():
            self.metrics.command_sent(driver, n)
        if trigger is not None and report.first_at is not None and report.last_at is not None:
            first_s = report.first_at - trigger.at
            last_s = report.last_at - trigger.at
            self.metrics.observe_event_to_command(trigger.name, last_s)
            self.reactions.append((trigger.name, first_s, last_s))

    def event(self, kind: str, **fields: Any) -> None:
        """One audit record on the events topic; transitions are logged too."""
        self.publish(
            self.topics.events, payloads.event(kind, self.clock.time(), **fields), 1, False
        )
        if kind == "commands":
            log.debug(kind, **fields)
        else:
            log.info(kind, **fields)

    def rejected(self, feed: str, reason: str, detail: str) -> None:
        """I10: count, report on the events topic, log at most once a minute per feed+reason."""
        self.metrics.message_rejected(feed, reason)
        self.publish(
            self.topics.events,
            payloads.event("rejected", self.clock.time(), feed=feed, reason=reason, detail=detail),
            1,
            False,
        )
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

    def feeds_seen(self, seen_at: dict[str, float]) -> None:
        for feed, at in seen_at.items():
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
