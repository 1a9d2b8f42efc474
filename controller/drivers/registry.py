"""Driver registries: kind -> factory; unknown or duplicate kinds are errors (evcc util/registry).

`pool_registry()` builds a fresh registry of the pool drivers (no module-level state to mutate
at import, so tests and reloads never see leftovers) from the one table of kinds,
`kinds.POOL_KINDS`: each kind's factory is the `make` of the module that line names. A new pool
driver is its module and its line there (see `controller/drivers/README.md`); a line whose
module has no `make` is refused when the registry is built, at start, naming both. PDUs and
meters are the same everywhere: `make_pdu` and `make_meter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from controller.adapters.modbus import EndpointPool
from controller.config import Config, MeterConfig, PduConfig
from controller.drivers.deps import PoolDeps, PoolFactory
from controller.drivers.kinds import POOL_KINDS, PoolKind
from controller.drivers.meter import MeterDriver
from controller.drivers.pdu import PduDriver
from controller.drivers.pool import PoolDriver

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


def _factory(kind: PoolKind) -> PoolFactory:
    module = importlib.import_module(f"controller.drivers.{kind.module}")
    make = getattr(module, "make", None)
    if not callable(make):
        raise UnknownDriverKindError(
            f"pool driver kind {kind.name!r}: controller/drivers/{kind.module}.py defines no "
            "factory `make(cfg, deps)`"
        )
    factory: PoolFactory = make
    return factory


def pool_registry() -> DriverRegistry[PoolFactory]:
    registry: DriverRegistry[PoolFactory] = DriverRegistry()
    for kind in POOL_KINDS.values():
        registry.register(kind.name, _factory(kind))
    return registry


def build_pools(
    config: Config, deps: PoolDeps, registry: DriverRegistry[PoolFactory] | None = None
) -> dict[str, PoolDriver]:
    """One driver per configured pool, in config order."""
    factories = registry or pool_registry()
    return {p.name: factories.get(p.driver)(p, deps) for p in config.pools}
