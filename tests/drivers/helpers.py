"""Helpers for driver tests: configs pointing at loopback simulators."""

from __future__ import annotations

from controller.config import MeterConfig, PduConfig, PoolConfig

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
