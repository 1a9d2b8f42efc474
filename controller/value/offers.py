"""The reserve offer strategy: each interval's awarded MW (the floor) and what it earns.

An offer of `mw` is that many MW every hour listed. An offer of `share` is that share of the
mining expected to run in the hour, known the day before: the pools whose breakeven is above
the hour's day-ahead price at the site's point (what a load bidding its breakeven would clear in
the DAM, where a load resource's AS award is co-optimised with its energy), or of the whole
fleet when no day-ahead price is given. Every offer is awarded in full at the clearing price.
"""

from __future__ import annotations

from controller.backtest import Interval, ideal_kw_at, room_kw
from controller.config import Config
from controller.core.site import compile_site
from controller.errors import UsageError
from controller.feeds.ercot import PriceFileError
from controller.value.hours import HOUR_S, hour_ending, hour_of, label
from controller.value.reserve_prices import ReservePrices

Awards = dict[int, tuple[float, float, bool]]  # interval index -> (floor kW, $ earned, has RRS)


def award_schedule(
    config: Config,
    series: list[Interval],
    reserves: ReservePrices | None,
    dam: dict[float, float] | None,
    notes: list[str],
) -> Awards | None:
    """Each interval's award floor and reserve revenue, or None when reserves are not valued.

    Raises UsageError for clearing prices without offers or offers beyond the fleet, and
    PriceFileError (naming the files) for an offered hour they hold no prices for."""
    offers = config.backtest.offers
    if reserves is None:
        if offers:
            notes.append("reserves: not valued (no --reserve-prices file)")
        return None
    if not offers:
        raise UsageError("--reserve-prices needs an offer strategy: [[backtest.offers]] in config")
    fleet_kw = min(sum(p.max_kw for p in config.pools), room_kw(config))
    offered_kw = sum(o.mw * 1000.0 if o.mw is not None else (o.share or 0.0) * fleet_kw
                     for o in offers)  # fmt: skip
    if offered_kw > fleet_kw + 1e-6:
        raise UsageError(
            f"[[backtest.offers]] total {offered_kw / 1000:g} MW, more than the fleet's "
            f"{fleet_kw / 1000:g} MW under the firm-GPU envelope"
        )
    ufr_kw = sum(p.max_kw for p in config.pools if p.ufr)
    if any(o.product == "RRS" for o in offers) and ufr_kw == 0:
        notes.append(
            "reserves: RRS offered but no pool has ufr = true; a load resource needs an "
            "under-frequency relay for RRS (the floor is held on the other pools)"
        )
    hashprice = config.economics.hashprice_usd_per_ph_day
    breakevens = {p.name: p.breakeven_usd_per_mwh(hashprice) for p in compile_site(config).pools}
    if dam is None and any(o.share is not None for o in offers):
        notes.append("reserves: no day-ahead prices, so `share` offers are a share of the fleet")
    awards: Awards = {}
    no_market: dict[str, int] = {}
    no_dam = 0
    for k, row in enumerate(series):
        hour = hour_of(row.start)
        he = hour_ending(hour)
        expected_kw: float | None = fleet_kw
        if dam is not None:
            price = dam.get(hour)
            expected_kw = (
                None if price is None else sum(ideal_kw_at(config, breakevens, price).values())
            )
        floor_kw, usd, rrs = 0.0, 0.0, False
        for offer in offers:
            if he not in offer.hours_ending:
                continue
            if offer.mw is not None:
                mw = offer.mw
            elif expected_kw is None:
                no_dam += 1
                continue
            else:
                mw = (offer.share or 0.0) * expected_kw / 1000.0
            if mw <= 0:
                continue
            prices = reserves.prices.get(hour)
            if prices is None:
                raise PriceFileError(
                    ", ".join(reserves.files),
                    f"no clearing prices for {label(hour)}; the files cover {reserves.coverage()}",
                )
            clearing = prices.get(offer.product)
            if clearing is None:
                no_market[offer.product] = no_market.get(offer.product, 0) + 1
                continue
            floor_kw += mw * 1000.0
            usd += mw * clearing * row.length_s / HOUR_S
            rrs = rrs or offer.product == "RRS"
        if floor_kw > 0:
            awards[k] = (floor_kw, usd, rrs)
    for product, count in sorted(no_market.items()):
        notes.append(f"reserves: {product} had no clearing price in {count} offered intervals "
                     "(no market yet): no award there")  # fmt: skip
    if no_dam:
        notes.append(f"reserves: {no_dam} share offers not made (no day-ahead price that hour)")
    return awards
