"""BackoffPolicy: the one retry delay of device health, Modbus reconnects and MQTT reconnects."""

from __future__ import annotations

import pytest

from controller.adapters import modbus, mqtt
from controller.backoff import BackoffPolicy


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_s=0.5, factor=2.0, max_s=5.0)
    assert [policy.delay_s(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay_s(10_000) == 5.0  # no overflow after a long outage


@pytest.mark.parametrize(
    "fields", [{"initial_s": 10.0, "max_s": 1.0}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_bad_policy_is_rejected(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        BackoffPolicy(**fields)


def test_jitter_shortens_a_delay_by_at_most_its_share() -> None:
    policy = BackoffPolicy(initial_s=1.0, factor=2.0, max_s=8.0, jitter=0.25)
    assert policy.delay_s(3, rand=lambda: 0.0) == 4.0
    assert policy.delay_s(3, rand=lambda: 1.0) == 3.0
    assert policy.delay_s(10, rand=lambda: 0.5) == 7.0  # capped first, then spread


def test_the_adapters_keep_their_delays() -> None:
    # The sequences the adapters used before they shared the policy: MQTT 0.2 s doubling to
    # 10 s between reconnects, a Modbus endpoint 0.1 s doubling to 5 s after failed connects.
    assert [mqtt.RECONNECT_BACKOFF.delay_s(n) for n in range(1, 9)] == [
        0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0,
    ]  # fmt: skip
    holdoff = modbus._CONNECT_HOLDOFF
    assert [holdoff.delay_s(n) for n in range(1, 9)] == [
        0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0,
    ]  # fmt: skip
