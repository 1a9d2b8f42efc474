"""Driver registry: kind -> factory; unknown or duplicate kinds are errors (evcc util/registry).

`default_registry()` returns a fresh registry holding the Modbus kinds ("pdu", "meter",
"modbus"); the MQTT pool driver adds itself with `registry.register("mqtt", factory)`. There is no
module-level registry to mutate at import time, so tests and reloads never see leftovers.

A factory takes the device's config model and the shared `DriverDeps`, checks the config type
itself (configs of different kinds are different models) and returns the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from controller.adapters.modbus import EndpointPool
from controller.config import MeterConfig, PduConfig, PoolConfig
from controller.drivers.meter import MeterDriver
from controller.drivers.modbus_pool import ModbusPoolDriver
from controller.drivers.pdu import PduDriver

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
    """What factories share. `services` carries what other kinds need (the MQTT session)."""

    endpoints: EndpointPool
    on_protected_refused: Callable[[str], None] = _ignore_refusal
    services: Mapping[str, object] = field(default_factory=dict)


DriverFactory = Callable[[object, DriverDeps], object]


def _wrong_config(cfg: object, model: type[object], kind: str) -> TypeError:
    return TypeError(f"driver {kind!r} needs a {model.__name__}, got {type(cfg).__name__}")


def make_pdu(cfg: object, deps: DriverDeps) -> PduDriver:
    if not isinstance(cfg, PduConfig):
        raise _wrong_config(cfg, PduConfig, "pdu")
    return PduDriver(cfg, deps.endpoints.get(cfg.host, cfg.port), deps.on_protected_refused)


def make_meter(cfg: object, deps: DriverDeps) -> MeterDriver:
    if not isinstance(cfg, MeterConfig):
        raise _wrong_config(cfg, MeterConfig, "meter")
    return MeterDriver(cfg, deps.endpoints.get(cfg.host, cfg.port))


def make_modbus_pool(cfg: object, deps: DriverDeps) -> ModbusPoolDriver:
    if not isinstance(cfg, PoolConfig):
        raise _wrong_config(cfg, PoolConfig, "modbus")
    if cfg.host is None or cfg.port is None:
        raise ValueError(f"pool {cfg.name}: driver 'modbus' needs host and port")
    return ModbusPoolDriver(cfg, deps.endpoints.get(cfg.host, cfg.port))


def default_registry() -> DriverRegistry[DriverFactory]:
    registry: DriverRegistry[DriverFactory] = DriverRegistry()
    registry.register("pdu", make_pdu)
    registry.register("meter", make_meter)
    registry.register("modbus", make_modbus_pool)
    return registry
