"""Price economics per pool (I7, CONTRACT 7 Economics): breakeven, hysteresis band, dwell.

The last stage of the pipeline picks the price mode: a fresh price lets each pool's economics
decide (in the walk); a stale one (failsafe `price_stale`) curtails, narrowing the cap to 0, or
holds every pool as it is; an override `run` ignores the price, under the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from controller.config import EconomicsConfig, FeedsConfig
from controller.core.plan import Reason
from controller.core.policies import Cap
from controller.core.site import PoolSpec
from controller.core.state import PoolState
from controller.model import ActingPrice, OverrideRequest


class PriceMode(Enum):
    ACT = "act"  # a fresh price: the band and dwell decide
    HOLD = "hold"  # no usable price: keep each pool's running/curtailed state
    CURTAIL = "curtail"  # stale price with on_price_stale = "curtail"
    RUN = "run"  # operator override `run`: ignore price (caps still apply)


class PriceStage(NamedTuple):
    cap: Cap
    mode: PriceMode
    price_usd_per_mwh: float  # the acting price (0 before the first one)
    failsafe: tuple[str, ...]
    never_raise: bool
    reasons: tuple[Reason, ...]


def stage(
    cap: Cap,
    acting: ActingPrice | None,
    started_at: float,
    override: OverrideRequest | None,
    feeds: FeedsConfig,
    floor_kw: float,
    now: float,
) -> PriceStage:
    """`floor_kw`: what the active awards hold against price (I12; 0: none)."""
    mode, price, stale = price_mode(acting, started_at, feeds, now)
    narrowed = cap
    failsafe: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    if stale:
        failsafe = ("price_stale",)
        detail = f"price_stale: no price received for over {feeds.price_stale_s:.0f} s"
        if mode is PriceMode.CURTAIL:
            # Not knowing the price is a price reason: an award's floor stays (of what runs).
            narrowed = cap.narrow(floor_kw, "safety")
            cap_kw = narrowed.kw if narrowed is not cap else None
            held = f" to the awarded {floor_kw:.1f} kW" if floor_kw > 0 else ""
            reasons = (Reason("failsafe", cap_kw, f"{detail}; mining is curtailed{held}"),)
        else:
            reasons = (Reason("failsafe", None, f"{detail}; every pool holds"),)
    if override is not None and override.mode == "run":
        mode = PriceMode.RUN
    # No usable price: nothing justifies more load (CONTRACT 7), an award's floor included.
    never_raise = mode is PriceMode.HOLD or (mode is PriceMode.CURTAIL and floor_kw > 0)
    return PriceStage(narrowed, mode, price, failsafe, never_raise, reasons)


def price_mode(
    acting: ActingPrice | None, started_at: float, feeds: FeedsConfig, now: float
) -> tuple[PriceMode, float, bool]:
    """(mode, price, stale). Before the first price it counts as stale once price_stale_s has
    passed since start (CONTRACT 7 Prices)."""
    stale_s = feeds.price_stale_s
    if acting is None:
        stale = now - started_at > stale_s
        price = 0.0
    else:
        stale = now - acting.received_at > stale_s
        price = acting.price_usd_per_mwh
    if not stale:
        return (PriceMode.ACT if acting is not None else PriceMode.HOLD), price, False
    if feeds.on_price_stale == "curtail":
        return PriceMode.CURTAIL, price, True
    return PriceMode.HOLD, price, True


@dataclass(slots=True)
class Economics:
    """The economics of one decision, read once from the config (not once per pool): a slot
    reads in a few ns, a pydantic field in about 30, and this is read for every pool. Not
    frozen: built on every decision, and a frozen dataclass builds three times slower."""

    mode: PriceMode
    price_usd_per_mwh: float
    hashprice_usd_per_ph_day: float
    half_band_usd_per_mwh: float  # hysteresis / 2 on each side of a breakeven
    min_run_s: float
    min_curtail_s: float

    @classmethod
    def of(
        cls, mode: PriceMode, price: float, hashprice: float, econ: EconomicsConfig
    ) -> Economics:
        half_band = econ.hysteresis_usd_per_mwh / 2.0
        return cls(mode, price, hashprice, half_band, econ.min_run_s, econ.min_curtail_s)


def price_wants_run(pool: PoolState, spec: PoolSpec, e: Economics, now: float) -> bool:
    """Whether economics want this pool running, whatever curtailed it before (CONTRACT 7)."""
    mode = e.mode
    if mode is PriceMode.RUN:
        return True
    if mode is PriceMode.CURTAIL:
        return False
    if mode is PriceMode.HOLD:
        return pool.on
    # spec.breakeven_usd_per_mwh, inlined: this runs for every pool on every decision.
    strike = spec.strike_usd_per_mwh
    breakeven = strike if strike > 0 else e.hashprice_usd_per_ph_day * spec.breakeven_factor
    dwell_s = now - pool.changed_at
    if pool.on:
        return not (
            e.price_usd_per_mwh > breakeven + e.half_band_usd_per_mwh and dwell_s >= e.min_run_s
        )
    return e.price_usd_per_mwh < breakeven - e.half_band_usd_per_mwh and dwell_s >= e.min_curtail_s
