"""Price economics per pool (I7, CONTRACT 7 Economics): breakeven, hysteresis band, dwell."""

from __future__ import annotations

from enum import Enum

from controller.config import EconomicsConfig
from controller.core.state import PoolState


class PriceMode(Enum):
    ACT = "act"  # a fresh price: the band and dwell decide
    HOLD = "hold"  # no usable price: keep each pool's running/curtailed state
    CURTAIL = "curtail"  # stale price with on_price_stale = "curtail"
    RUN = "run"  # operator override `run`: ignore price (caps still apply)


def price_wants_run(
    pool: PoolState,
    breakeven: float,
    mode: PriceMode,
    price_usd_per_mwh: float,
    econ: EconomicsConfig,
    now: float,
) -> bool:
    """Whether economics want this pool running, whatever curtailed it before (CONTRACT 7)."""
    if mode is PriceMode.RUN:
        return True
    if mode is PriceMode.CURTAIL:
        return False
    if mode is PriceMode.HOLD:
        return pool.on
    half_band = econ.hysteresis_usd_per_mwh / 2.0
    dwell_s = now - pool.changed_at
    if pool.on:
        return not (price_usd_per_mwh > breakeven + half_band and dwell_s >= econ.min_run_s)
    return price_usd_per_mwh < breakeven - half_band and dwell_s >= econ.min_curtail_s
