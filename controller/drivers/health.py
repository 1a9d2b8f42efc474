"""Per-device health: up/down, consecutive failures, retry backoff, transition callbacks.

The app logs and sets `curtaild_device_up{device}` from the transition callback, so a device that
stays down produces one log line, not one per poll (the Home Assistant Modbus hub lesson). Time
comes from an injected clock; nothing here reads the wall clock by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.adapters.modbus import DeviceError
from controller.backoff import BackoffPolicy

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HealthTransition:
    """A device changed between up and down (`was_up` is None for the first verdict)."""

    device: str
    up: bool
    was_up: bool | None
    at: float
    consecutive_failures: int
    error: str | None


class DeviceBackingOffError(DeviceError):
    """The device failed recently and its retry time has not come; no request was sent."""

    def __init__(self, device: str, retry_at: float) -> None:
        super().__init__(f"{device}: backing off until t={retry_at:.3f}", transient=True)
        self.retry_at = retry_at


class DeviceHealth:
    """Health of one device. Up after one success; down after `down_after` failures in a row."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        policy: BackoffPolicy | None = None,
        down_after: int = 1,
        on_transition: Callable[[HealthTransition], None] | None = None,
    ) -> None:
        if down_after < 1:
            raise ValueError("down_after must be >= 1")
        self.name = name
        self._clock = clock
        self._policy = policy or BackoffPolicy()
        self._down_after = down_after
        self._on_transition = on_transition
        self.up: bool | None = None  # unknown until the first request settles it
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_success_at: float | None = None
        self.retry_at = 0.0

    def should_try(self) -> bool:
        """False while backing off after a failure."""
        return self._clock() >= self.retry_at

    def record_success(self) -> None:
        now = self._clock()
        self.consecutive_failures = 0
        self.last_error = None
        self.last_success_at = now
        self.retry_at = now
        self._set_up(True, now)

    def record_failure(self, error: BaseException | str) -> None:
        now = self._clock()
        self.consecutive_failures += 1
        self.last_error = str(error)
        self.retry_at = now + self._policy.delay_s(self.consecutive_failures)
        if self.consecutive_failures >= self._down_after:
            self._set_up(False, now)

    async def run(self, request: Callable[[], Awaitable[T]]) -> T:
        """Run one device request under this health: skip while backing off, record, re-raise.

        Only `DeviceError` counts against the device; any other exception is a bug in our code
        and propagates untouched rather than marking a healthy device down.
        """
        if not self.should_try():
            raise DeviceBackingOffError(self.name, self.retry_at)
        try:
            result = await request()
        except DeviceError as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result

    def _set_up(self, up: bool, now: float) -> None:
        if self.up is up:
            return
        was_up, self.up = self.up, up
        if self._on_transition is not None:
            self._on_transition(
                HealthTransition(
                    device=self.name,
                    up=up,
                    was_up=was_up,
                    at=now,
                    consecutive_failures=self.consecutive_failures,
                    error=self.last_error,
                )
            )


class HealthBoard:
    """The health of every device, sharing one clock, policy and transition callback."""

    def __init__(
        self,
        clock: Clock,
        *,
        policy: BackoffPolicy | None = None,
        down_after: int = 1,
        on_transition: Callable[[HealthTransition], None] | None = None,
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._down_after = down_after
        self._on_transition = on_transition
        self._devices: dict[str, DeviceHealth] = {}

    def device(self, name: str) -> DeviceHealth:
        health = self._devices.get(name)
        if health is None:
            health = DeviceHealth(
                name,
                self._clock,
                policy=self._policy,
                down_after=self._down_after,
                on_transition=self._on_transition,
            )
            self._devices[name] = health
        return health

    def up_by_device(self) -> dict[str, bool | None]:
        return {name: health.up for name, health in self._devices.items()}
