"""Helpers for driver tests: configs pointing at loopback simulators, pool driver deps."""

from __future__ import annotations

from controller.adapters.modbus import EndpointPool
from controller.clock import SystemClock
from controller.config import MeterConfig, PduConfig, PoolConfig
from controller.drivers.deps import PoolDeps
from controller.drivers.health import HealthBoard
from controller.drivers.pdu import PduDriver
from controller.model import PoolTelemetry

# Short enough that failure paths keep the suite fast, long enough for a loaded CI machine.
TIMEOUT_S = 0.3


def pdu_cfg(port: int, *, outlets: int = 8, protected: bool = False, **extra: int) -> PduConfig:
    return PduConfig(
        name="pdu-gpu-a1" if protected else "pdu-c01",
        host="127.0.0.1",
        port=port,
        outlets=outlets,
        outlet_kw=3.5,
        protected=protected,
        **extra,
    )


def meter_cfg(port: int, *, unit_id: int = 1) -> MeterConfig:
    return MeterConfig(name="poi", role="site", host="127.0.0.1", port=port, unit_id=unit_id)


def plc_cfg(port: int, *, max_kw: float = 3000.0) -> PoolConfig:
    return PoolConfig(
        name="c02",
        driver="modbus",
        max_kw=max_kw,
        efficiency_j_per_th=21.5,
        host="127.0.0.1",
        port=port,
        unit_id=1,
    )


class RecordingSink:
    """A pool driver's sink that keeps what it was told (PoolSink)."""

    def __init__(self) -> None:
        self.telemetry: dict[str, PoolTelemetry] = {}
        self.seq: dict[str, int] = {}

    def pool_telemetry(self, pool: str, telemetry: PoolTelemetry) -> None:
        self.telemetry[pool] = telemetry

    def command_seq(self, pool: str, seq: int) -> None:
        self.seq[pool] = seq


def pool_deps(
    endpoints: EndpointPool,
    pdus: dict[str, PduDriver],
    *,
    sink: RecordingSink | None = None,
    sent: list[tuple[str, bytes]] | None = None,
    topic_prefix: str = "curtaild",
) -> PoolDeps:
    """What pool factories need, on the real clock; MQTT publishes land in `sent`."""
    published = sent if sent is not None else []

    def publish(topic: str, payload: bytes, _qos: int, _retain: bool) -> bool:
        published.append((topic, payload))
        return True

    health = HealthBoard(SystemClock().monotonic)
    sink = sink or RecordingSink()
    return PoolDeps(endpoints, health, pdus, SystemClock(), publish, topic_prefix, sink)
