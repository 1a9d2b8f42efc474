"""Fixtures shared by every suite: a real mosquitto broker (never skipped) and MQTT configs.

The helpers themselves (MosquittoBroker, MqttProbe, TcpProxy) live in tests/support.py so tests
can import them for typing (free_port is controller.sim.configs'); the fixtures here only manage
lifetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from controller.config import MqttConfig
from tests.support import MOSQUITTO_MISSING, SHARED_ERCOT, MosquittoBroker, find_mosquitto


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Real prices are optional (they live outside the repository); a missing broker is not.
    if item.get_closest_marker("realdata") is not None and not SHARED_ERCOT.is_dir():
        pytest.skip(f"realdata: {SHARED_ERCOT} not present")


def _new_broker(users: Mapping[str, str] | None = None) -> MosquittoBroker:
    binary = find_mosquitto()
    if binary is None:
        # A missing broker fails the run: a skipped integration suite reads as a green one.
        pytest.fail(MOSQUITTO_MISSING, pytrace=False)
    broker = MosquittoBroker(binary, users=users)
    try:
        broker.start()
    except RuntimeError as exc:
        broker.cleanup()
        pytest.fail(str(exc), pytrace=False)
    return broker


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    """One mosquitto for the whole run on a free 127.0.0.1 port; use unique topics per test."""
    broker = _new_broker()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def fresh_broker() -> Iterator[MosquittoBroker]:
    """A mosquitto of this test's own, free to stop, kill and `restart()` on the same port."""
    broker = _new_broker()
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def make_broker() -> Iterator[Callable[..., MosquittoBroker]]:
    """Start extra brokers: `make_broker(users={"name": "password"})` requires that login.

    Every broker made here is stopped when the test ends.
    """
    made: list[MosquittoBroker] = []

    def make(users: Mapping[str, str] | None = None) -> MosquittoBroker:
        made.append(_new_broker(users))
        return made[-1]

    try:
        yield make
    finally:
        for broker in made:
            broker.cleanup()


@pytest.fixture
def mqtt_cfg(mosquitto_broker: MosquittoBroker) -> MqttConfig:
    """MqttConfig for the shared broker with a unique client_id and topic_prefix for this test."""
    return mosquitto_broker.mqtt_config()
