"""An in-process MQTT broker (amqtt) for `curtaild demo`: loopback only, anonymous, no plugins.

Not for production: amqtt speaks MQTT 3.1.1 only, never enforces keepalive and does not queue
messages for offline anonymous sessions. Sites run mosquitto (deploy/mosquitto).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from controller.extras import require

# amqtt logs every connection and packet at INFO/DEBUG; the demo's own log is what matters.
_CHATTY_LOGGERS = ("amqtt", "transitions")


class EmbeddedBroker:
    """`async with EmbeddedBroker(port) as broker:` or `await start()` / `await stop()`.

    `port=0` lets the OS pick a free port; read it back from `.port` after `start()`.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, quiet: bool = True) -> None:
        self.host = host
        self.port = port
        self._quiet = quiet
        self._broker: Any = None  # amqtt ships no type information

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        return {
            # amqtt's default listener is 0.0.0.0:1883: always bind explicitly.
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # The default set adds $SYS publishing every 20 s and packet logging; the demo needs
            # neither, and starting fewer plugins keeps start() at a few milliseconds.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    async def start(self) -> None:
        if self._broker is not None:
            return
        if self._quiet:
            for name in _CHATTY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        # amqtt is the `demo` extra: the daemon itself never needs it.
        amqtt_broker = require("amqtt.broker", "demo", "the demo's embedded MQTT broker")
        broker = amqtt_broker.Broker(self._config())  # inside the running loop: it captures it
        await broker.start()
        self._broker = broker
        if self.port == 0:
            self.port = self.bound_address()[1]

    def bound_address(self) -> tuple[str, int]:
        """The (host, port) the listener really holds: amqtt does not report what ":0" became."""
        server = self._broker._servers["default"].instance  # private: no public accessor
        host, port = server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
