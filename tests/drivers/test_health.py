"""DeviceHealth: backoff with a cap, transitions not repetitions, injected time."""

from __future__ import annotations

import pytest

from controller.adapters.modbus import DeviceError, EndpointPool
from controller.backoff import BackoffPolicy
from controller.clock import FakeClock
from controller.drivers.health import (
    DeviceBackingOffError,
    DeviceHealth,
    HealthBoard,
    HealthTransition,
)
from controller.drivers.meter import MeterDriver
from controller.sim.modbus_devices import SimMeter
from controller.sim.modbus_server import SimModbusSite
from tests.drivers.helpers import meter_cfg


def test_transitions_fire_once_per_change(clock: FakeClock) -> None:
    seen: list[HealthTransition] = []
    health = DeviceHealth(
        "poi", clock, policy=BackoffPolicy(1.0, 2.0, 8.0), on_transition=seen.append
    )
    assert health.up is None
    health.record_success()
    health.record_success()
    assert [(t.up, t.was_up) for t in seen] == [(True, None)]

    clock.advance(1.0)
    for _ in range(5):
        health.record_failure(DeviceError("refused", transient=True))
    assert [(t.up, t.was_up) for t in seen] == [(True, None), (False, True)]
    assert seen[-1].error == "refused"
    assert seen[-1].consecutive_failures == 1
    assert seen[-1].at == 1001.0
    assert health.consecutive_failures == 5

    health.record_success()
    assert [t.up for t in seen] == [True, False, True]
    assert health.consecutive_failures == 0


def test_down_after_tolerates_single_misses(clock: FakeClock) -> None:
    seen: list[HealthTransition] = []
    health = DeviceHealth("poi", clock, down_after=3, on_transition=seen.append)
    health.record_success()
    health.record_failure("timeout")
    health.record_failure("timeout")
    assert health.up is True
    health.record_failure("timeout")
    assert health.up is False
    assert [t.up for t in seen] == [True, False]


def test_retry_waits_for_backoff(clock: FakeClock) -> None:
    health = DeviceHealth("pdu-c01", clock, policy=BackoffPolicy(1.0, 2.0, 3.0))
    assert health.should_try()
    health.record_failure("x")
    assert not health.should_try()
    clock.advance(0.99)
    assert not health.should_try()
    clock.advance(0.01)
    assert health.should_try()
    health.record_failure("x")
    clock.advance(1.5)
    assert not health.should_try()
    clock.advance(0.5)
    assert health.should_try()
    health.record_failure("x")
    health.record_failure("x")
    assert health.retry_at == clock() + 3.0  # capped


async def test_run_skips_records_and_reraises(
    site: SimModbusSite, endpoints: EndpointPool, clock: FakeClock
) -> None:
    sim = site.add(SimMeter(700.0))
    await site.start()
    meter = MeterDriver(meter_cfg(sim.port), endpoints.get("127.0.0.1", sim.port))
    board = HealthBoard(clock, policy=BackoffPolicy(2.0, 2.0, 10.0))
    health = board.device("poi")

    assert await health.run(meter.read_power_kw) == 700.0
    assert board.up_by_device() == {"poi": True}

    await sim.stop()
    with pytest.raises(DeviceError):
        await health.run(meter.read_power_kw)
    assert board.up_by_device() == {"poi": False}
    requests_before = len(sim.requests)

    # Backing off: no request is even attempted.
    with pytest.raises(DeviceBackingOffError):
        await health.run(meter.read_power_kw)
    assert health.consecutive_failures == 1
    assert len(sim.requests) == requests_before

    await sim.start()
    clock.advance(2.0)
    for _ in range(20):  # past the endpoint's own short connect hold-off
        try:
            assert await health.run(meter.read_power_kw) == 700.0
            break
        except DeviceError:
            clock.advance(10.0)
    assert health.up is True


async def test_bugs_are_not_device_failures(clock: FakeClock) -> None:
    health = DeviceHealth("poi", clock)

    async def broken() -> float:
        raise KeyError("bug in our code")

    with pytest.raises(KeyError):
        await health.run(broken)
    assert health.up is None
    assert health.consecutive_failures == 0
