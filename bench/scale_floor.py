"""The bare protocol floor (issue 9, point 2): the same coil writes and the same pool commands
as the daemon sent for an event, from a script that does nothing else.

One process, started once per size: a pymodbus client already connected to every writable PDU
and one aiomqtt client on the broker. On ("fire", writes, cmds) it sends every coil write and
publishes every cmd (QoS 1, retained, as the daemon does) all at once with `asyncio.gather`,
unbounded, on uvloop like the daemon. The writes and cmds repeat what the daemon already put on
the devices (same outlet values, same `seq`), so replaying them changes nothing on the site.
The PDU servers and the measuring subscriber time them exactly as they time the daemon's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt
import uvloop
from pymodbus.client import AsyncModbusTcpClient

from bench.scale_devices import raise_open_files, serve_pipe

CoilWrites = list[tuple[str, int, tuple[bool, ...]]]  # (pdu, first outlet, values)
Cmds = list[tuple[str, bytes]]  # (topic, payload)


def floor_main(conn: Connection, broker_port: int, pdu_ports: dict[str, int]) -> None:
    raise_open_files()
    uvloop.run(_floor(conn, broker_port, pdu_ports))


async def _floor(conn: Connection, broker_port: int, pdu_ports: dict[str, int]) -> None:
    clients = {
        name: AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
        for name, port in pdu_ports.items()
    }
    await asyncio.gather(*(c.connect() for c in clients.values()))
    # aiomqtt warns past 10 publishes in flight: the floor has hundreds in flight on purpose.
    quiet = logging.getLogger("bench-floor-mqtt")
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(
        "127.0.0.1", broker_port, identifier="bench-floor", logger=quiet
    ) as mqtt:

        async def fire(writes: CoilWrites, cmds: Cmds) -> tuple[float, float]:
            started = time.time()
            await asyncio.gather(
                *(clients[pdu].write_coils(first, list(values)) for pdu, first, values in writes),
                *(mqtt.publish(topic, payload, qos=1, retain=True) for topic, payload in cmds),
            )
            return started, time.time()

        async def handle(request: tuple[Any, ...]) -> tuple[float, float]:
            return await fire(request[1], request[2])

        await serve_pipe(conn, handle)
    for client in clients.values():
        with contextlib.suppress(Exception):
            client.close()
