"""Modbus TCP endpoints: the only module that imports the pymodbus client API.

pymodbus moves its API between minor versions (`slave=` became `device_id=` in 3.10, the payload
builder went away), so every call goes through here. An endpoint is one TCP connection to one
(host, port): many devices behind one gateway share it, told apart by unit id, and one lock keeps
their requests from interleaving on the wire.

Failure handling is ours, not pymodbus's: its own retries and background reconnect are off, so a
dead device costs one bounded timeout per call and the caller's health/backoff decides when to try
again. Error replies and connection problems both become `DeviceError`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from controller.backoff import BackoffPolicy

# Exception codes that say the request itself is wrong (function, address, value): retrying the
# same request cannot help, so they are permanent. Busy, device failure and gateway codes pass.
_PERMANENT_EXCEPTION_CODES: Final = frozenset({0x01, 0x02, 0x03})
# Extra allowance over pymodbus's own timeout so that its error, which says more, normally wins.
_GUARD_S: Final = 0.25
_FLOAT32: Final = AsyncModbusTcpClient.DATATYPE.FLOAT32
# After a failed connect, calls fail fast for this long (doubling to the cap) so that devices
# queued behind one dead gateway do not each wait out a connect timeout.
_CONNECT_HOLDOFF: Final = BackoffPolicy(initial_s=0.1, factor=2.0, max_s=5.0)


class DeviceError(Exception):
    """A Modbus request failed; `transient` says whether retrying later may succeed."""

    def __init__(self, message: str, *, transient: bool, exception_code: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.exception_code = exception_code


def float32_to_registers(value: float) -> list[int]:
    """Encode one float32, big-endian, high word first (CONTRACT 3.2, 3.3)."""
    if not math.isfinite(value):
        raise ValueError(f"float32 value must be finite, got {value!r}")
    try:
        return AsyncModbusTcpClient.convert_to_registers(value, _FLOAT32, word_order="big")
    except OverflowError as exc:  # struct refuses values beyond float32 range
        raise ValueError(f"{value!r} does not fit a float32") from exc


def registers_to_float32s(registers: Sequence[int]) -> list[float]:
    """Decode consecutive float32 values, high word first."""
    decoded = AsyncModbusTcpClient.convert_from_registers(list(registers), _FLOAT32, "big")
    # pymodbus returns a scalar for exactly one value and a list otherwise.
    values = decoded if isinstance(decoded, list) else [decoded]
    return [float(v) for v in values]


def quiet_pymodbus_logs(level: int = logging.CRITICAL) -> None:
    """pymodbus logs a warning or an error, with a dump of recent frames, on every failed
    connect or request: a line per poll while a device is down. Health transitions are what the
    app logs (DESIGN 7), so the app calls this once at start-up."""
    logging.getLogger("pymodbus").setLevel(level)


class ModbusEndpoint:
    """One lazily connected Modbus TCP connection to (host, port); unit ids are per call."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._clock = clock
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._holdoff_until = 0.0
        self._connect_failures = 0  # in a row
        self._deadline: asyncio.Timeout | None = None  # of the request in flight
        self._dropped = False  # the connection went away since it was made
        self.requests_total = 0
        self.failures_total = 0

    def __str__(self) -> str:
        return f"modbus://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def read_coils(self, address: int, count: int, *, unit_id: int) -> list[bool]:
        rr = await self._call(
            "read_coils", lambda c: c.read_coils(address, count=count, device_id=unit_id)
        )
        return self._bits(rr, count)

    async def read_discrete_inputs(self, address: int, count: int, *, unit_id: int) -> list[bool]:
        rr = await self._call(
            "read_discrete_inputs",
            lambda c: c.read_discrete_inputs(address, count=count, device_id=unit_id),
        )
        return self._bits(rr, count)

    async def read_input_registers(self, address: int, count: int, *, unit_id: int) -> list[int]:
        rr = await self._call(
            "read_input_registers",
            lambda c: c.read_input_registers(address, count=count, device_id=unit_id),
        )
        return self._registers(rr, count)

    async def read_holding_registers(self, address: int, count: int, *, unit_id: int) -> list[int]:
        rr = await self._call(
            "read_holding_registers",
            lambda c: c.read_holding_registers(address, count=count, device_id=unit_id),
        )
        return self._registers(rr, count)

    async def write_coils(self, address: int, values: Sequence[bool], *, unit_id: int) -> None:
        """One write-multiple-coils request (function 15), even for a single coil."""
        bits = [bool(v) for v in values]
        await self._call("write_coils", lambda c: c.write_coils(address, bits, device_id=unit_id))

    async def write_registers(self, address: int, values: Sequence[int], *, unit_id: int) -> None:
        """One write-multiple-registers request (function 16), even for a single register."""
        regs = list(values)
        await self._call(
            "write_registers", lambda c: c.write_registers(address, regs, device_id=unit_id)
        )

    async def read_input_float32s(self, address: int, count: int, *, unit_id: int) -> list[float]:
        """`count` float32 values from input registers address .. address + 2*count - 1."""
        return registers_to_float32s(
            await self.read_input_registers(address, 2 * count, unit_id=unit_id)
        )

    async def write_float32(self, address: int, value: float, *, unit_id: int) -> None:
        """Both words in one request, so the device never sees half a new value."""
        await self.write_registers(address, float32_to_registers(value), unit_id=unit_id)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _on_connection_change(self, up: bool) -> None:
        # pymodbus leaves a request whose connection dropped waiting out its whole timeout;
        # the reply can no longer come, so end the wait now (a restarted device fails fast).
        if up:
            return
        self._dropped = True
        if self._deadline is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time())

    async def _call(
        self, what: str, request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        async with self._lock:
            self.requests_total += 1
            try:
                client = await self._connected_client()
                async with asyncio.timeout(self.timeout_s + _GUARD_S) as deadline:
                    self._deadline = deadline
                    try:
                        response = await request(client)
                    finally:
                        self._deadline = None
            except DeviceError:
                self.failures_total += 1
                raise
            except asyncio.CancelledError:
                # Cancelled mid-request (shutdown, a caller's timeout): the reply may still
                # come, so drop the connection rather than let it meet the next request.
                self.close()
                raise
            except (ModbusException, TimeoutError, OSError, RuntimeError) as exc:
                # A timed-out request may still be answered later; a fresh connection makes
                # sure that late reply can never be taken for the next request's. uvloop
                # raises RuntimeError ("the handler is closed") when pymodbus writes to a
                # transport that closed under it (seen after connect timeouts at 3,000 PDUs):
                # without the reconnect, that device failed every request, for good.
                if isinstance(exc, RuntimeError) and "closed" not in str(exc):
                    raise  # not a connection problem: a bug, counted where it is contained
                self.failures_total += 1
                self.close()
                cause = "connection lost" if self._dropped else str(exc) or "timed out"
                raise DeviceError(f"{self}: {what}: {cause}", transient=True) from exc
        if response.isError():
            self.failures_total += 1
            code = response.exception_code
            raise DeviceError(
                f"{self}: {what}: device replied with exception code {code}",
                transient=code not in _PERMANENT_EXCEPTION_CODES,
                exception_code=code,
            )
        return response

    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is None:
            # Created here, inside the running loop: pymodbus binds its futures to it.
            # reconnect_delay=0 turns off pymodbus's background reconnect; retries=0 its resends.
            self._client = AsyncModbusTcpClient(
                self.host,
                port=self.port,
                timeout=self.timeout_s,
                retries=0,
                reconnect_delay=0,
                trace_connect=self._on_connection_change,
            )
        if self._client.connected:
            return self._client
        self._dropped = False
        now = self._clock()
        if now < self._holdoff_until:
            raise DeviceError(f"{self}: not connected (retrying shortly)", transient=True)
        try:
            async with asyncio.timeout(self.timeout_s + _GUARD_S):
                ok = await self._client.connect()
        except TimeoutError:
            ok = False
        # connect() reports failure by returning False (or leaving no transport), not raising.
        if not ok or not self._client.connected:
            self._connect_failures += 1
            self._holdoff_until = self._clock() + _CONNECT_HOLDOFF.delay_s(self._connect_failures)
            raise DeviceError(f"{self}: cannot connect", transient=True)
        self._connect_failures = 0
        self._holdoff_until = 0.0
        return self._client

    def _bits(self, rr: ModbusPDU, count: int) -> list[bool]:
        # Replies carry whole bytes: the bits past `count` are padding.
        if len(rr.bits) < count:
            raise DeviceError(f"{self}: short reply ({len(rr.bits)} bits)", transient=False)
        return [bool(b) for b in rr.bits[:count]]

    def _registers(self, rr: ModbusPDU, count: int) -> list[int]:
        if len(rr.registers) != count:
            raise DeviceError(
                f"{self}: reply has {len(rr.registers)} registers, asked {count}", transient=False
            )
        return list(rr.registers)


class EndpointPool:
    """Hands out one shared endpoint per (host, port): one connection and lock per gateway."""

    def __init__(
        self, *, timeout_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._endpoints: dict[tuple[str, int], ModbusEndpoint] = {}

    def get(self, host: str, port: int) -> ModbusEndpoint:
        key = (host, port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = ModbusEndpoint(host, port, timeout_s=self.timeout_s, clock=self._clock)
            self._endpoints[key] = endpoint
        return endpoint

    def __len__(self) -> int:
        return len(self._endpoints)

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
