"""Outlet-switched pool driver (driver = "pdu"): miners on PDU outlets, nothing else to tell.

The command is the number of energised outlets (in fixed order across the pool's PDUs), and
the telemetry is the outlets' power summed. There is no seq on the wire: the pool has applied a
command once every one of its PDUs shows the vector the command asked for, and that seq is what
its telemetry reports.
"""

from __future__ import annotations

from controller.clock import Clock
from controller.config import PoolConfig
from controller.drivers.deps import PoolDeps
from controller.drivers.outlets import OutletGroup
from controller.drivers.pdu import PduDriver
from controller.drivers.pool import PoolCommand, PoolDriver, SendLog
from controller.model import PoolTelemetry

POLL_S = 0.5


class PduPool(PoolDriver):
    poll_period_s = POLL_S

    def __init__(
        self, cfg: PoolConfig, outlets: OutletGroup, *, pdus: list[PduDriver], clock: Clock
    ) -> None:
        super().__init__(cfg, outlets)
        self._pdus = pdus  # every PDU of the pool, for reading
        self._clock = clock

    def _outlets_on(self, cmd: PoolCommand) -> int | None:
        # The plan names the outlets; a pool decide() has not commanded yet has none named, and
        # its outlets are unknown: left as they are.
        return 0 if cmd.cut else cmd.outlets_on

    async def send(self, log: SendLog) -> None:
        await super().send(log)
        cmd = self._cmd
        if cmd is not None and cmd.commanded and self.outlets.settled:
            self.sent_seq = cmd.seq  # applied: every PDU shows what the command asked for

    async def _send_command(self, cmd: PoolCommand, log: SendLog) -> None:
        """The outlets are the command (`send` writes them)."""

    @property
    def pending(self) -> bool:
        return self.outlets.pending or (
            self._cmd is not None and self._cmd.commanded and self.outlets.settled
            and self.sent_seq != self._cmd.seq
        )  # fmt: skip

    async def read(self) -> PoolTelemetry:
        total_kw = 0.0
        for pdu in self._pdus:
            total_kw += await self.outlets.health(pdu.name).run(pdu.read_power_kw)
        return PoolTelemetry(total_kw, None, True, self.sent_seq or 0, self._clock.time())

    def devices(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._pdus)

    def down(self) -> bool:
        return any(self.outlets.health(name).up is False for name in self.devices())


def make(cfg: PoolConfig, deps: PoolDeps) -> PduPool:
    return PduPool(cfg, deps.outlets(cfg), pdus=deps.pdus_of(cfg), clock=deps.clock)
