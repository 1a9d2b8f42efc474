"""The pool driver kinds and their traits: the one table the rest of the code reads.

Config checks, the compiled site model and the runtime never compare a driver's name; they ask
its traits (does it report on its own, does it switch outlets, is it a PLC on a Modbus address).
This module imports nothing, so the config and the pure core can read it without pulling in a
driver's I/O. A new kind is one entry here and one factory line in `registry.py`; see
`controller/drivers/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolKind:
    name: str
    # Its agent publishes telemetry on its own (MQTT): silent past `control.pool_stale_s`, the
    # pool is unreachable. Polled kinds are marked offline by their poller instead.
    reports_itself: bool = False
    # Its command is a number of energised outlets on its PDUs, not a setpoint: targets move in
    # whole-outlet steps, and the outlets are its telemetry (power summed from the PDUs).
    switches_outlets: bool = False
    # A PLC at its own Modbus address (`host`, `port`, `unit_id` on the pool).
    plc: bool = False


MQTT = PoolKind("mqtt", reports_itself=True)
MODBUS = PoolKind("modbus", plc=True)
PDU = PoolKind("pdu", switches_outlets=True)

POOL_KINDS: dict[str, PoolKind] = {k.name: k for k in (MQTT, MODBUS, PDU)}


def pool_kind(name: str) -> PoolKind:
    """The traits of a configured kind; config validation has already refused unknown ones."""
    try:
        return POOL_KINDS[name]
    except KeyError:
        known = ", ".join(sorted(POOL_KINDS))
        raise ValueError(f"unknown pool driver {name!r} (known: {known})") from None
