"""The site's devices for the host check: what config.example.toml points at, simulated.

A fresh VM has no meters, PDUs, PLCs or pool agents, so this serves them on the loopback ports
the site's config names (controller.sim, as `curtaild demo` and the integration tests do): the
Modbus meters, PDUs and the PLC, and the MQTT pool agent, which logs in to the broker as its own
ACL account. Run it with the installed venv's python, the pool account in the environment:

    CURTAILD_MQTT__USERNAME=pool-c01 CURTAILD_MQTT__PASSWORD=... \
        /opt/curtaild/.venv/bin/python sim_site.py /etc/curtaild/curtaild.toml

It runs until SIGTERM. Not part of curtaild: a test fixture for deploy/hostcheck only.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from controller.config import load_config
from controller.sim.site import SimSite


async def serve(config_path: str) -> None:
    config = load_config(config_path)  # [mqtt] username/password from the environment
    site = SimSite(config)
    await site.start()
    sys.stdout.write(f"sim site up: {len(config.meters)} meters, {len(config.pdus)} PDUs\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await site.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
