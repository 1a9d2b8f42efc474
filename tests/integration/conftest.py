"""Integration fixtures: async MQTT probes on the shared broker.

Every test gets its own topic prefix (`mqtt_cfg.topic_prefix`), so retained messages left by one
test never leak into another on the session-wide mosquitto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controller.config import MqttConfig
from tests.support import MosquittoBroker, MqttProbe


@pytest.fixture
async def probe(
    mosquitto_broker: MosquittoBroker, mqtt_cfg: MqttConfig
) -> AsyncIterator[MqttProbe]:
    """A probe subscribed to everything under this test's topic prefix."""
    async with MqttProbe(
        mosquitto_broker.host, mosquitto_broker.port, [f"{mqtt_cfg.topic_prefix}/#"]
    ) as p:
        yield p
