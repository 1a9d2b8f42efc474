"""Driver registries: kind -> factory; unknown or duplicate kinds are errors (evcc util/registry).

`pool_registry()` builds a fresh registry of the pool drivers (no module-level state to mutate
at import, so tests and reloads never see leftovers), one line per kind of `kinds.POOL_KINDS`. A
new pool driver is its module, its traits in `kinds.py` and one `register` line below (see
`controller/drivers/README.md`); `pool_registry()` refuses a kind without traits, and traits
without a factory. PDUs and meters are the same everywhere: `make_pdu` and `make_meter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from controller.adapters.modbus import EndpointPool
from controller.clock import Clock
from controller.config import Config, MeterConfig, PduConfig, PoolConfig
from controller.drivers.health import HealthBoard
from controller.drivers.kinds import POOL_KINDS
from controller.drivers.meter import MeterDriver
from controller.drivers.modbus_pool import ModbusPool, PlcDriver
from controller.drivers.mqtt_pool import MqttPool, Publish
from controller.drivers.outlets import OutletGroup
from controller.drivers.pdu import PduDriver
from controller.drivers.pdu_pool import PduPool
from controller.drivers.pool import PoolDriver, PoolSink

F = TypeVar("F")


class UnknownDriverKindError(LookupError):
    pass


class DuplicateDriverKindError(ValueError):
    pass


class DriverRegistry(Generic[F]):
    def __init__(self) -> None:
        self._factories: dict[str, F] = {}

    def register(self, kind: str, factory: F) -> None:
        if not kind:
            raise ValueError("driver kind must be a non-empty name")
        if kind in self._factories:
            raise DuplicateDriverKindError(f"driver kind {kind!r} is already registered")
        self._factories[kind] = factory

    def get(self, kind: str) -> F:
        try:
            return self._factories[kind]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownDriverKindError(
                f"unknown driver kind {kind!r} (registered: {known})"
            ) from None

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))

    def __contains__(self, kind: object) -> bool:
        return kind in self._factories


def _ignore_refusal(_pdu: str) -> None:
    """Default refusal hook; the app passes one that counts and logs (CONTRACT I1)."""


@dataclass(frozen=True, slots=True)
class DriverDeps:
    """What device factories share."""

    endpoints: EndpointPool
    on_protected_refused: Callable[[str], None] = _ignore_refusal


def make_pdu(cfg: PduConfig, deps: DriverDeps) -> PduDriver:
    return PduDriver(cfg, deps.endpoints.get(cfg.host, cfg.port), deps.on_protected_refused)


def make_meter(cfg: MeterConfig, deps: DriverDeps) -> MeterDriver:
    return MeterDriver(cfg, deps.endpoints.get(cfg.host, cfg.port))


# -- pools ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolDeps:
    """What pool factories share: the site's devices and the daemon's sinks."""

    endpoints: EndpointPool
    health: HealthBoard
    pdus: Mapping[str, PduDriver]  # every PDU of the site, built by the device registry
    clock: Clock
    publish: Publish
    topic_prefix: str
    sink: PoolSink


PoolFactory = Callable[[PoolConfig, PoolDeps], PoolDriver]


def _outlets(cfg: PoolConfig, deps: PoolDeps) -> OutletGroup:
    return OutletGroup([deps.pdus[n] for n in cfg.pdus], deps.health)


def make_mqtt_pool(cfg: PoolConfig, deps: PoolDeps) -> MqttPool:
    return MqttPool(
        cfg,
        _outlets(cfg, deps),
        publish=deps.publish,
        topic_prefix=deps.topic_prefix,
        sink=deps.sink,
    )


def make_modbus_pool(cfg: PoolConfig, deps: PoolDeps) -> ModbusPool:
    if cfg.host is None or cfg.port is None:
        raise ValueError(f"pool {cfg.name}: driver 'modbus' needs host and port")
    plc = PlcDriver(cfg, deps.endpoints.get(cfg.host, cfg.port))
    return ModbusPool(cfg, _outlets(cfg, deps), plc=plc, clock=deps.clock)


def make_pdu_pool(cfg: PoolConfig, deps: PoolDeps) -> PduPool:
    pdus = [deps.pdus[n] for n in cfg.pdus]
    return PduPool(cfg, _outlets(cfg, deps), pdus=pdus, clock=deps.clock)


def pool_registry() -> DriverRegistry[PoolFactory]:
    registry: DriverRegistry[PoolFactory] = DriverRegistry()
    registry.register("mqtt", make_mqtt_pool)
    registry.register("modbus", make_modbus_pool)
    registry.register("pdu", make_pdu_pool)
    if set(registry.kinds()) != set(POOL_KINDS):
        raise UnknownDriverKindError(
            f"pool driver factories {registry.kinds()} and kinds.py {sorted(POOL_KINDS)} differ"
        )
    return registry


def build_pools(
    config: Config, deps: PoolDeps, registry: DriverRegistry[PoolFactory] | None = None
) -> dict[str, PoolDriver]:
    """One driver per configured pool, in config order."""
    factories = registry or pool_registry()
    return {p.name: factories.get(p.driver)(p, deps) for p in config.pools}
