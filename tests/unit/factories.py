"""Builders of snapshots and validated inputs, and readings of a config, for any unit test or
property. Plain functions over plain data (no hypothesis here); site configs are built by
`controller.sim.configs`. Snapshot-side builders make the frozen inputs of `decide()` with
their timestamps.
"""

from __future__ import annotations

from controller.config import Config, PoolConfig
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideMode,
    OverrideRequest,
    PoolTelemetry,
    PriceProduct,
    Reading,
)

# A fixed, realistic epoch (2023-11-14T22:13:20Z) so that times in failures are readable.


def protected_pdu_names(config: Config) -> frozenset[str]:
    return frozenset(p.name for p in config.pdus if p.protected)


def breakeven_usd_per_mwh(pool: PoolConfig, hashprice_usd_per_ph_day: float, fee: float) -> float:
    """CONTRACT section 7, written out independently of the core's precomputed factor."""
    if pool.strike_usd_per_mwh > 0:
        return pool.strike_usd_per_mwh
    return hashprice_usd_per_ph_day * (1.0 - fee) * 1000.0 / (24.0 * pool.efficiency_j_per_th)


def outlet_capacity_kw(config: Config, pool: PoolConfig) -> list[float]:
    """The outlet sizes of a pool's PDUs in their fixed switching order."""
    pdus = {p.name: p for p in config.pdus}
    return [pdus[n].outlet_kw for n in pool.pdus for _ in range(pdus[n].outlets)]


# Snapshot side -------------------------------------------------------------------------


def reading(value: float, at: float) -> Reading:
    return Reading(float(value), float(at))


def acting_price(
    price_usd_per_mwh: float,
    received_at: float,
    *,
    interval_start: float | None = None,
    product: PriceProduct = "rt_spp",
) -> ActingPrice:
    start = received_at if interval_start is None else interval_start
    return ActingPrice(float(price_usd_per_mwh), start, received_at, product)


def telemetry(
    power_kw: float,
    at: float,
    *,
    available_kw: float | None = None,
    online: bool = True,
    applied_seq: int = 0,
) -> PoolTelemetry:
    return PoolTelemetry(float(power_kw), available_kw, online, applied_seq, at)


def dispatch(
    kind: str | DispatchType,
    msg_id: str,
    now: float,
    *,
    mining_kw_at_receipt: float = 0.0,
    mw: float | None = None,
    level: int | None = None,
    start: float | None = None,
    end: float | None = None,
    deadline_s: float = 0.0,
    recall_id: str | None = None,
) -> DispatchInstruction:
    """A validated instruction as the dispatch feed hands it over, received at `now`."""
    return DispatchInstruction(
        id=msg_id,
        type=DispatchType(kind),
        notified_at=now,
        received_at=now,
        mining_kw_at_receipt=mining_kw_at_receipt,
        mw=mw,
        level=level,
        start=start,
        end=end,
        deadline_s=deadline_s,
        recall_id=recall_id,
    )


def override(
    mode: OverrideMode,
    now: float,
    *,
    ttl_s: float = 600.0,
    limit_kw: float | None = None,
    nonce: str | None = None,
    operator: str = "op",
) -> OverrideRequest:
    """A validated override request issued at `now` (auto: no expiry)."""
    return OverrideRequest(
        mode=mode,
        limit_kw=limit_kw,
        expires_at=None if mode == "auto" else now + ttl_s,
        operator=operator,
        reason="test",
        issued_at=now,
        nonce=nonce if nonce is not None else f"n-{now!r}-{mode}",
    )
