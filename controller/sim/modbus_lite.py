"""A light Modbus TCP responder for the scale benchmark: thousands of simulated PDUs per process.

A pymodbus server costs about a tenth of a millisecond of Python per request and a few hundred
kB per instance; at 1,000 PDUs the simulator, not the daemon, would set the pace of a fan-out.
This one parses the MBAP frame itself (`asyncio.Protocol`, no task per request) and speaks the
functions the PDU and meter profiles use (CONTRACT 3.1, 3.2): 1 read coils, 2 read discrete
inputs, 4 read input registers, 5 write single coil, 15 write multiple coils. Anything else is
answered with exception 1 (illegal function), an address outside the device with 2.

Every write is stamped with `time.time()` as its frame is parsed: the instant the command is
"on the wire" as the benchmark measures it (one clock for every process on the host).
The pymodbus-backed `modbus_devices` stay the simulator of the tests: they exercise faults
(stalls, exception codes, restarts) this responder does not model.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

from controller.sim.modbus_devices import float32_words

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_ILLEGAL_FUNCTION, _ILLEGAL_ADDRESS = 0x01, 0x02


@dataclass(slots=True)
class CoilWrite:
    """One write request as it arrived: when, on which device, from which outlet, what."""

    at: float  # time.time()
    device: str
    first: int
    values: tuple[bool, ...]


class LiteDevice:
    """One Modbus unit: coils, discrete inputs and input registers rendered on each request."""

    def coils(self) -> list[bool]:
        return []

    def discrete_inputs(self) -> list[bool]:
        return [False]

    def input_registers(self) -> list[int]:
        return []

    def write_coils(self, first: int, values: list[bool], at: float) -> bool:
        """Apply a write; False when it falls outside the device."""
        return False


@dataclass(slots=True, eq=False)
class LitePdu(LiteDevice):
    """Coil i is outlet i; input register i its power in W (0 when off)."""

    name: str
    outlets: int
    outlet_kw: float
    load_fraction: float = 0.9
    on_write: Callable[[LitePdu, CoilWrite], None] | None = None
    outlets_on: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.outlets_on = [True] * self.outlets

    @property
    def outlet_w(self) -> int:
        return min(0xFFFF, round(self.outlet_kw * 1000.0 * self.load_fraction))

    def power_kw(self) -> float:
        return sum(self.outlets_on) * self.outlet_w / 1000.0

    def coils(self) -> list[bool]:
        return self.outlets_on

    def input_registers(self) -> list[int]:
        w = self.outlet_w
        return [w if on else 0 for on in self.outlets_on]

    def write_coils(self, first: int, values: list[bool], at: float) -> bool:
        if first < 0 or first + len(values) > self.outlets:
            return False
        self.outlets_on[first : first + len(values)] = values
        if self.on_write is not None:
            self.on_write(self, CoilWrite(at, self.name, first, tuple(values)))
        return True


@dataclass(slots=True, eq=False)
class LiteMeter(LiteDevice):
    """IR 0-1 power kW, IR 2-3 frequency Hz (float32, high word first), DI 0 islanded.
    `on_read(at, frequency_hz)` is called on every register read (the trip's "meter read")."""

    name: str
    power_source: Callable[[], float]
    frequency_hz: float = 60.0
    islanded: bool = False
    on_read: Callable[[float, float], None] | None = None

    def discrete_inputs(self) -> list[bool]:
        return [self.islanded]

    def input_registers(self) -> list[int]:
        if self.on_read is not None:
            self.on_read(time.time(), self.frequency_hz)
        return float32_words(self.power_source()) + float32_words(self.frequency_hz)


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _unpack_bits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]


class _Responder(asyncio.Protocol):
    def __init__(self, units: Mapping[int, LiteDevice], server: LiteServer) -> None:
        self._units = units
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._server.transports.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        at = time.time()
        buffer = self._buffer + data
        replies = []
        while len(buffer) >= 8:
            tid, _pid, length, unit = _MBAP.unpack_from(buffer)
            end = 6 + length
            if len(buffer) < end:
                break
            body = self._answer(unit, buffer[7:end], at)
            buffer = buffer[end:]
            if body is not None:
                replies.append(_MBAP.pack(tid, 0, len(body) + 1, unit) + body)
        self._buffer = buffer
        if replies and self._transport is not None:
            self._transport.write(b"".join(replies))

    def _answer(self, unit: int, pdu: bytes, at: float) -> bytes | None:
        device = self._units.get(unit)
        if device is None or not pdu:
            return None  # no such unit: a gateway would time out too
        fc = pdu[0]
        try:
            reply = self._function(device, fc, pdu, at)
        except (struct.error, IndexError):
            reply = None
        return reply if reply is not None else bytes((fc | 0x80, _ILLEGAL_ADDRESS))

    def _function(self, device: LiteDevice, fc: int, pdu: bytes, at: float) -> bytes | None:
        if fc in (1, 2, 4):
            address, count = struct.unpack_from(">HH", pdu, 1)
            source: list[bool] | list[int] = (
                device.coils()
                if fc == 1
                else device.discrete_inputs()
                if fc == 2
                else device.input_registers()
            )
            if count == 0 or address + count > len(source):
                return None
            chunk = source[address : address + count]
            if fc == 4:
                data = struct.pack(f">{count}H", *chunk)
            else:
                data = _pack_bits([bool(b) for b in chunk])
            return bytes((fc, len(data))) + data
        if fc == 5:
            address, value = struct.unpack_from(">HH", pdu, 1)
            ok = device.write_coils(address, [value == 0xFF00], at)
            return pdu[:5] if ok else None
        if fc == 15:
            address, count, _n = struct.unpack_from(">HHB", pdu, 1)
            ok = device.write_coils(address, _unpack_bits(pdu[6:], count), at)
            return pdu[:5] if ok else None
        return bytes((fc | 0x80, _ILLEGAL_FUNCTION))


class LiteServer:
    """One listening port on 127.0.0.1 serving `units` (unit id -> device)."""

    def __init__(self, units: Mapping[int, LiteDevice], host: str = "127.0.0.1") -> None:
        self.units = dict(units)
        self.host = host
        self.port = 0
        self.transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Responder(self.units, self), self.host, port, backlog=64
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for transport in list(self.transports):
                transport.close()
            await server.wait_closed()
