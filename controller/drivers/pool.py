"""The pool driver role: command a target, report telemetry, say whether the pool can be cut.

One module per kind (`mqtt_pool`, `modbus_pool`, `pdu_pool`), built through `registry.py`; the
runtime's Applier and Pollers loop over `PoolDriver`s and never ask which kind one is. A driver
owns everything about its pool's wire: the last command it sent and its seq (so a device without
sequence numbers reports the seq it applied), the PDU outlets of its hard-cut path, and, for an
agent that reports itself, its topics. It never imports `runtime/` or `core/`: it takes a
`PoolCommand` and reports telemetry through the `PoolSink` it was built with (DESIGN point 6).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from controller.config import PoolConfig
from controller.drivers.kinds import PoolKind, pool_kind
from controller.drivers.outlets import OutletGroup
from controller.model import PoolTelemetry


@dataclass(frozen=True, slots=True)
class PoolCommand:
    """A pool's line of the plan, in the drivers' terms."""

    seq: int
    target_kw: float
    reason: str
    outlets_on: int | None  # energised outlets (in fixed order) when the plan names them
    cut: bool  # hard cut: every outlet of the pool's PDUs off (escalation, frequency trip)
    # decided in this life: a pool never commanded since start is left as it is (I6)
    commanded: bool
    at: float  # epoch s, the plan's time
    # The leadership sending it (an active/standby pair, docs/ha.md); None: a single daemon.
    epoch: int | None = None


class SendLog(Protocol):
    """Where a driver reports what it put on the wire (the Applier's report)."""

    def sent(self, kind: str) -> None: ...

    def failed(self, kind: str) -> None: ...


class PoolSink(Protocol):
    """Where a driver that hears from its pool on its own (MQTT) reports it."""

    def pool_telemetry(self, pool: str, telemetry: PoolTelemetry) -> None: ...

    def command_seq(self, pool: str, seq: int) -> None: ...


MessageHandler = Callable[[bytes, float], None]  # (payload, received_at)


class PoolDriver(ABC):
    """The role. A subclass implements `_send_command`; polled kinds implement `read`."""

    poll_period_s: float | None = None  # None: the pool reports on its own

    def __init__(self, cfg: PoolConfig, outlets: OutletGroup) -> None:
        self.name = cfg.name
        self.kind: PoolKind = pool_kind(cfg.driver)
        self.max_kw = cfg.max_kw
        self.outlets = outlets  # its writable PDUs: the hard-cut path (or the command itself)
        self.sent_seq: int | None = None  # seq of the last command that reached the pool
        self._cmd: PoolCommand | None = None

    # -- what the plan wants ---------------------------------------------------------------

    @property
    def can_cut(self) -> bool:
        """A hard cut path exists (PDUs) that is not already the pool's own command."""
        return bool(self.outlets) and not self.kind.switches_outlets

    def reconfigure(self, cfg: PoolConfig) -> None:
        """A reload (same devices): only ratings may change."""
        self.max_kw = cfg.max_kw

    def plan(self, cmd: PoolCommand) -> None:
        """Take a changed line of the plan; nothing is sent until `send`."""
        self._cmd = cmd
        if not cmd.commanded and not cmd.cut:
            return  # not commanded since start: its outlets are left as they are (I6)
        if self.sent_seq != cmd.seq:
            # A new command writes what it asks for even where our last vector already did
            # (a re-command after drift, an outlet switched by hand); the PDU driver still
            # writes only the outlets that differ from what it last read.
            self.outlets.forget_written()
        on_count = self._outlets_on(cmd)
        if on_count is not None:
            self.outlets.want(on_count)

    def _outlets_on(self, cmd: PoolCommand) -> int | None:
        """Energised outlets for a setpoint pool: all while it runs, none when cut; a pool at
        0 kW that is not cut keeps its outlets as they are."""
        if cmd.cut:
            return 0
        if cmd.outlets_on is not None:
            return cmd.outlets_on
        return self.outlets.count if cmd.target_kw > 0 else None

    @property
    def pending(self) -> bool:
        cmd = self._cmd
        command_due = cmd is not None and cmd.commanded and self.sent_seq != cmd.seq
        return command_due or self.outlets.pending

    async def send(self, log: SendLog) -> None:
        """Put what is pending on the wire. Device errors are logged as failures and left for
        the next plan; anything else is a bug and propagates to the Applier, which counts it."""
        cmd = self._cmd
        if cmd is not None and cmd.commanded and self.sent_seq != cmd.seq:
            await self._send_command(cmd, log)
        if self.outlets.pending:
            await self.outlets.write(log)

    @abstractmethod
    async def _send_command(self, cmd: PoolCommand, log: SendLog) -> None: ...

    # -- restarts and reconnects -----------------------------------------------------------

    def restore(self, seq: int) -> None:
        """After a restart: the state store says this seq was sent last. A polled pool then
        reports it as applied, so its restored target confirms by telemetry; nothing is
        re-sent."""
        self.sent_seq = seq

    def republish(self, cmd: PoolCommand) -> None:  # noqa: B027 - a hook most kinds skip
        """After a (re)connect to the broker: a retained command again (MQTT kinds only)."""

    def topics(self) -> Mapping[str, MessageHandler]:
        """Topics this pool's own reports arrive on (kinds that report themselves)."""
        return {}

    # -- telemetry -------------------------------------------------------------------------

    async def read(self) -> PoolTelemetry:
        """One poll of the pool's telemetry (polled kinds); raises DeviceError on failure."""
        raise NotImplementedError(f"pool {self.name}: driver {self.kind.name!r} is not polled")

    def devices(self) -> tuple[str, ...]:
        """The devices whose health says whether the pool can be read at all."""
        return ()

    def down(self) -> bool:
        """The pool's device is known to be down (not merely one failed read)."""
        return False
