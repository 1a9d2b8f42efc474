"""What the processes log: nothing per device on the hot path (issue 9, point 5)."""

from __future__ import annotations

import logging

from controller import logs


def test_libraries_that_log_every_request_are_held_to_warnings() -> None:
    """httpx logs each request at INFO: a line per miner call in `curtaild agent` (thousands a
    poll at a large pool), per API call in the feeder."""
    logs.configure()
    for name in ("httpx", "httpcore", "pymodbus", "amqtt"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert logging.getLogger("curtaild.agent").isEnabledFor(logging.INFO)
