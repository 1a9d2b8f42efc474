"""Loopback Modbus TCP servers (pymodbus 3.16) for the simulated devices in `modbus_devices`.

Each model keeps its state in Python and hooks pymodbus through `SimDevice(action=...)`, which
pymodbus awaits on every access before it touches its registers: reads render the Python state
into the registers, writes update it (and are counted) before pymodbus stores them. Datastore
block subclasses no longer work for this in 3.16: `ModbusSequentialDataBlock` is only a
`SimData` initialiser now and the server never calls its methods.

`SimModel` is the base every device subclasses; it and `SimServer` refer to each other (a model
knows its server to report its port), so they live together here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

Blocks = tuple[list[SimData], list[SimData], list[SimData], list[SimData]]  # co, di, hr, ir
M = TypeVar("M", bound="SimModel")
Vals = list[int] | None  # values a write carries (bits arrive as bools, which are ints)
Reply = ExcCodes | None  # an exception code to answer with, or None to proceed


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request as it arrived on the wire."""

    unit_id: int
    function_code: int
    address: int
    count: int


class SimModel:
    """One simulated Modbus unit. Set `fault` to answer every request with that exception
    code, `stall_s` to delay every answer (timeouts)."""

    def __init__(self, unit_id: int) -> None:
        self.unit_id = unit_id
        self.fault: ExcCodes | None = None
        self.stall_s = 0.0
        self.requests: list[SimRequest] = []
        self.server: SimServer | None = None

    @property
    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("simulator was never started")
        return self.server.port

    async def start(self, port: int | None = None) -> int:
        if self.server is None:
            SimServer([self])
        assert self.server is not None
        return await self.server.start(port)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def sim_device(self) -> SimDevice:
        return SimDevice(self.unit_id, simdata=self._blocks(), action=self._action)

    def _blocks(self) -> Blocks:
        raise NotImplementedError

    def _access(self, fc: int, start: int, addr: int, regs: list[int], values: Vals) -> Reply:
        raise NotImplementedError

    async def _action(
        self,
        fc: int,
        start: int,
        address: int,
        _count: int,
        regs: list[int],
        values: list[int] | list[bool] | None,
    ) -> Reply:
        if self.stall_s > 0:
            await asyncio.sleep(self.stall_s)
        if self.fault is not None:
            return self.fault
        return self._access(fc, start, address, regs, cast(Vals, values))


class SimServer:
    """One ModbusTcpServer on 127.0.0.1 hosting one model, or several (a gateway) by unit id."""

    def __init__(self, models: Sequence[SimModel], host: str = "127.0.0.1") -> None:
        if len({m.unit_id for m in models}) != len(models):
            raise ValueError("models on one server need distinct unit ids")
        self.host = host
        self.models = {m.unit_id: m for m in models}
        for model in models:
            model.server = self
        self._server: ModbusTcpServer | None = None
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    async def start(self, port: int | None = None) -> int:
        """Listen on `port`, else the port used before (restarts), else a free one."""
        if self._server is not None:
            return self._port
        bind_port = self._port if port is None else port
        server = ModbusTcpServer(
            [m.sim_device() for m in self.models.values()],
            address=(self.host, bind_port),
            trace_pdu=self._trace,
        )
        await server.serve_forever(background=True)
        listener = cast(asyncio.Server, server.transport)
        self._port = int(listener.sockets[0].getsockname()[1])
        self._server = server
        return self._port

    async def stop(self) -> None:
        """Close the listener and every client connection (they see the device drop)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        model = self.models.get(pdu.dev_id)
        if not sending and model is not None:
            model.requests.append(SimRequest(pdu.dev_id, pdu.function_code, pdu.address, pdu.count))
        return pdu


class SimModbusSite:
    """Starts many simulated devices on free loopback ports and stops every one of them.

    pymodbus's ServerAsyncStop() stops only the last server started, so each server is kept
    and shut down by reference."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.servers: list[SimServer] = []

    def add(self, model: M) -> M:
        self.servers.append(SimServer([model], self.host))
        return model

    def gateway(self, *models: SimModel) -> SimServer:
        """Several units behind one port, as on a Modbus TCP-to-RTU gateway."""
        server = SimServer(models, self.host)
        self.servers.append(server)
        return server

    async def start(self) -> None:
        for server in self.servers:
            await server.start()

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    async def __aenter__(self) -> SimModbusSite:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
