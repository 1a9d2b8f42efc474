"""What a pool driver's factory is given: the site's shared devices and the daemon's sinks.

Each driver module ends with its factory, `make(cfg, deps)`; `kinds.py` names the module and
`registry.py` finds the factory there, so a new kind is its module plus its line in `kinds.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controller.adapters.modbus import EndpointPool
from controller.clock import Clock
from controller.config import PoolConfig
from controller.drivers.health import HealthBoard
from controller.drivers.outlets import OutletGroup
from controller.drivers.pdu import PduDriver
from controller.drivers.pool import PoolDriver, PoolSink

Publish = Callable[[str, bytes, int, bool], bool]  # (topic, payload, qos, retain) -> queued


@dataclass(frozen=True, slots=True)
class PoolDeps:
    endpoints: EndpointPool  # one connection per (host, port): a PLC gateway is shared
    health: HealthBoard
    pdus: Mapping[str, PduDriver]  # every PDU of the site, built by the device registry
    clock: Clock
    publish: Publish
    topic_prefix: str
    sink: PoolSink

    def outlets(self, cfg: PoolConfig) -> OutletGroup:
        """The pool's hard-cut path: its PDUs' outlets (never a protected PDU, CONTRACT I1)."""
        return OutletGroup([self.pdus[n] for n in cfg.pdus], self.health)

    def pdus_of(self, cfg: PoolConfig) -> list[PduDriver]:
        return [self.pdus[n] for n in cfg.pdus]


PoolFactory = Callable[[PoolConfig, PoolDeps], PoolDriver]
