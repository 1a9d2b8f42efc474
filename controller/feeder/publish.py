"""The feeder's MQTT side: one connection, QoS 1, retained; `publish` returns once the broker
has acknowledged the message (PUBACK), so the state written after it never runs ahead of what
the broker holds. While the broker is away it retries with backoff, holding the records: they
go out in order once it is back, and the state is not advanced meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from controller.adapters.mqtt import RECONNECT_BACKOFF, make_client
from controller.config_model import MqttConfig

logger = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 10.0


class Publisher:
    def __init__(self, cfg: MqttConfig, client_id: str) -> None:
        self._cfg = cfg
        self._client_id = client_id
        self._client: aiomqtt.Client | None = None
        self.connected = False
        self.published = 0

    async def publish(self, topic: str, payload: bytes) -> None:
        failures = 0
        while True:
            try:
                if self._client is None:
                    self._client = make_client(self._cfg, self._client_id)
                if not self.connected:
                    await self._client.__aenter__()
                    self.connected = True
                    logger.info("mqtt connected to %s:%s", self._cfg.host, self._cfg.port)
                await self._client.publish(
                    topic, payload, qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S
                )
                self.published += 1
                return
            except aiomqtt.MqttError as exc:
                failures += 1
                logger.warning("mqtt publish to %s failed (%s); retrying", topic, exc)
                await self.close()
                await asyncio.sleep(RECONNECT_BACKOFF.delay_s(failures))

    async def close(self) -> None:
        if self._client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, RuntimeError):
                await self._client.__aexit__(None, None, None)
        self._client = None  # a fresh client for the next connection: no stale session state
        self.connected = False
