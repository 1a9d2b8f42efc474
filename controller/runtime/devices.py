"""The site's devices, built from the config through the driver registries, and what a reload
may not change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.adapters.modbus import EndpointPool
from controller.clock import Clock
from controller.config import Config
from controller.drivers.deps import PoolDeps, Publish
from controller.drivers.health import HealthBoard
from controller.drivers.meter import MeterDriver
from controller.drivers.pdu import PduDriver
from controller.drivers.pool import PoolDriver, PoolSink
from controller.drivers.registry import (
    DriverDeps,
    build_pools,
    make_meter,
    make_pdu,
)

MODBUS_TIMEOUT_S = 1.0


@dataclass
class Devices:
    meters: dict[str, MeterDriver]
    pdus: dict[str, PduDriver]
    pools: dict[str, PoolDriver]  # config order
    endpoints: EndpointPool  # one connection and lock per (host, port): a gateway is shared


def build_devices(
    config: Config,
    clock: Clock,
    health: HealthBoard,
    *,
    publish: Publish,
    sink: PoolSink,
    on_protected_refused: Callable[[str], None],
) -> Devices:
    endpoints = EndpointPool(timeout_s=MODBUS_TIMEOUT_S, clock=clock.monotonic)
    deps = DriverDeps(endpoints, on_protected_refused)
    meters = {m.name: make_meter(m, deps) for m in config.meters}
    pdus = {p.name: make_pdu(p, deps) for p in config.pdus}
    pools = build_pools(
        config,
        PoolDeps(endpoints, health, pdus, clock, publish, config.mqtt.topic_prefix, sink),
    )
    return Devices(meters, pdus, pools, endpoints)


def devices_key(config: Config) -> tuple[object, ...]:
    """What a reload cannot change in place: connections, topics and the device set."""
    pools = tuple(
        (
            p.name,
            p.driver,
            p.host,
            p.port,
            p.unit_id,
            tuple(p.pdus),
            p.setpoint_register,
            p.measured_register,
        )
        for p in config.pools
    )
    return (
        config.mqtt.model_dump_json(),
        # The dump shows a password as ****: a rotated one is a change the session needs too.
        config.mqtt.password.get_secret_value(),
        config.metrics.listen,
        config.feeds.price_topic,
        config.feeds.dispatch_topic,
        config.feeds.hashprice_topic,
        tuple(m.model_dump_json() for m in config.meters),
        tuple(p.model_dump_json() for p in config.pdus),
        tuple((t.name, tuple(t.meters), tuple(t.pdus)) for t in config.gpu_tenants),
        pools,
    )
