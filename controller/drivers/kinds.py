"""The pool driver kinds and their traits: the one table the rest of the code reads.

Config checks, the compiled site model and the runtime never compare a driver's name; they ask
its traits (does it report on its own, does it switch outlets, is it a PLC on a Modbus address).
This module imports nothing, so the config and the pure core can read it without pulling in a
driver's I/O. A new kind is its module in this folder (ending with its factory, `make`) and one
line here; `registry.py` finds the factory by the module's name. See `controller/drivers/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolKind:
    name: str  # the `driver` value in a pool's config
    module: str  # its module in controller/drivers/, which defines `make(cfg, deps)`
    # Its agent publishes telemetry on its own (MQTT): silent past `control.pool_stale_s`, the
    # pool is unreachable. Polled kinds are marked offline by their poller instead.
    reports_itself: bool = False
    # Its command is a number of energised outlets on its PDUs, not a setpoint: targets move in
    # whole-outlet steps, and the outlets are its telemetry (power summed from the PDUs).
    switches_outlets: bool = False
    # A PLC at its own Modbus address (`host`, `port`, `unit_id` on the pool).
    plc: bool = False


def _table(*kinds: PoolKind) -> dict[str, PoolKind]:
    names = [k.name for k in kinds]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"pool driver kind listed twice: {', '.join(dupes)}")
    return {k.name: k for k in kinds}


# The registry: one line per kind.
POOL_KINDS: dict[str, PoolKind] = _table(
    PoolKind("mqtt", "mqtt_pool", reports_itself=True),
    PoolKind("modbus", "modbus_pool", plc=True),
    PoolKind("pdu", "pdu_pool", switches_outlets=True),
)


def pool_kind(name: str) -> PoolKind:
    """The traits of a configured kind; config validation has already refused unknown ones."""
    try:
        return POOL_KINDS[name]
    except KeyError:
        known = ", ".join(sorted(POOL_KINDS))
        raise ValueError(f"unknown pool driver {name!r} (known: {known})") from None
