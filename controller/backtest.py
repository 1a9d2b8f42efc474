"""Backtest: the same decide() over a price history, against always-on and an ideal.

The site is the simulated plant (controller.sim.plant) as the daemon would see it: pools follow
their targets exactly, GPU tenants draw their firm reservation, the site meter reads GPU +
mining + aux. Within each price
interval the controller ticks at `tick_s` until its plan settles (ramps, dwell timers), then
jumps to the next moment something can change, so a month of 15-minute prices takes seconds.

The ideal is the bound the rules aim at: in each interval every pool runs at its `max_kw` exactly
when the price is under its breakeven (the controller's, so a strike counts), most valuable
first under the always-on envelope, with no dwell, hysteresis or ramp. The gap between it and
the controller is what those rules cost on this history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from controller.config import Config
from controller.core.plan import Decision
from controller.core.state import ControllerState
from controller.model import ActingPrice, PriceRecord
from controller.sim.plant import Plant

INTERVAL_S = {"rt_spp": 900.0, "sced_lmp": 300.0, "dam_spp": 3600.0}


@dataclass
class Totals:
    """Energy and money for one way of running the site."""

    energy_mwh: float = 0.0
    cost_usd: float = 0.0
    revenue_usd: float = 0.0
    curtailed_h: float = 0.0  # hours with the whole fleet off
    partial_h: float = 0.0  # hours with some but not all of the fleet off

    @property
    def net_usd(self) -> float:
        return self.revenue_usd - self.cost_usd


class Interval(NamedTuple):
    """One price interval of the replay (the chart's data)."""

    start: float  # epoch s
    length_s: float
    price_usd_per_mwh: float
    mining_kw: float  # the controller's mean mining load over the interval
    net_usd: float  # revenue - cost: the controller
    baseline_net_usd: float  # always on
    ideal_net_usd: float  # the per-interval ideal
    pool_kw: tuple[float, ...] = ()  # each pool's mean load, in config.pools order


@dataclass
class BacktestResult:
    controller: Totals
    baseline: Totals
    hours: float
    series: list[Interval] = field(default_factory=list)
    ideal: Totals = field(default_factory=Totals)


def revenue_usd_per_h(config: Config, power_kw: dict[str, float], hashprice: float) -> float:
    """Mining revenue $/h: hashprice x PH/s x (1 - fee); 1 kW at 1 J/TH is 1 PH/s."""
    fee = config.economics.pool_fee
    per_day = sum(
        hashprice * (1.0 - fee) * power_kw.get(p.name, 0.0) / p.efficiency_j_per_th
        for p in config.pools
    )
    return per_day / 24.0


def run_backtest(
    config: Config, records: list[PriceRecord], interval_s: float | None = None
) -> BacktestResult:
    """Replay the records through decide(); the records must be sorted by time.

    Each record lasts its product's interval, or `interval_s` when given (the value stack's
    hourly means of real-time prices are one hour long, not 15 minutes)."""
    if not records:
        return BacktestResult(Totals(), Totals(), 0.0)
    hashprice = config.economics.hashprice_usd_per_ph_day
    tick_s = config.control.tick_s
    # Pools follow their targets exactly; tenants draw their firm reservation (the default).
    plant = Plant(config, records[0].interval_start - tick_s)
    always_on_kw = baseline_kw(config)
    breakevens = {p.name: p.breakeven_usd_per_mwh(hashprice) for p in plant.site.pools}
    controller, baseline, ideal = Totals(), Totals(), Totals()
    series: list[Interval] = []
    fleet_kw = sum(p.max_kw for p in config.pools)
    names = [p.name for p in config.pools]
    for record in records:
        length_s = interval_s or INTERVAL_S[record.product]
        start = record.interval_start
        price = ActingPrice(record.price_usd_per_mwh, start, start, record.product)
        now, energy_kwh = start, 0.0
        pool_kws = dict.fromkeys(names, 0.0)  # kW x s over the interval
        nets = [controller.net_usd, baseline.net_usd, ideal.net_usd]
        while now < start + length_s:
            plant.now = now
            decision = plant.decide(plant.observe(price=price))
            plant.keep(decision)
            plant.apply(decision.plan)
            step_s = _next_step_s(decision, plant.state, config, now, start + length_s, tick_s)
            _accumulate(controller, config, plant.power_kw, price, step_s, hashprice, fleet_kw)
            energy_kwh += plant.mining_kw * step_s / 3600.0
            for name in names:
                pool_kws[name] += plant.power_kw[name] * step_s
            now += step_s
        _accumulate(baseline, config, always_on_kw, price, length_s, hashprice, fleet_kw)
        ideal_kw = ideal_kw_at(config, breakevens, record.price_usd_per_mwh)
        _accumulate(ideal, config, ideal_kw, price, length_s, hashprice, fleet_kw)
        series.append(
            Interval(
                start,
                length_s,
                record.price_usd_per_mwh,
                energy_kwh * 3600.0 / length_s,
                controller.net_usd - nets[0],
                baseline.net_usd - nets[1],
                ideal.net_usd - nets[2],
                tuple(pool_kws[name] / length_s for name in names),
            )
        )
    hours = sum(interval_s or INTERVAL_S[r.product] for r in records) / 3600.0
    return BacktestResult(controller, baseline, hours, series, ideal)


def ideal_kw_at(
    config: Config, breakevens: dict[str, float], price_usd_per_mwh: float
) -> dict[str, float]:
    """The ideal's pools at one price: those under their breakeven at max_kw, highest breakeven
    first (the most net per kW), within the always-on envelope; the others at 0."""
    left_kw = room_kw(config)
    power: dict[str, float] = {}
    for pool in sorted(config.pools, key=lambda p: (-breakevens[p.name], p.name)):
        run = price_usd_per_mwh < breakevens[pool.name]
        power[pool.name] = min(pool.max_kw, left_kw) if run else 0.0
        left_kw -= power[pool.name]
    return power


def _next_step_s(
    decision: Decision,
    state: ControllerState,
    config: Config,
    now: float,
    end: float,
    tick_s: float,
) -> float:
    """Tick while the plan moves; otherwise jump to the next dwell expiry or the interval end."""
    if decision.changed or any(ps.state == "ramping" for ps in decision.plan.pools.values()):
        return min(tick_s, end - now)
    econ = config.economics
    wake = end
    for ps in state.pools.values():
        for dwell_s in (econ.min_run_s, econ.min_curtail_s):
            due = ps.changed_at + dwell_s
            if now < due < wake:
                wake = due
    return max(min(wake - now, end - now), min(tick_s, end - now))


def _accumulate(
    totals: Totals,
    config: Config,
    power_kw: dict[str, float],
    price: ActingPrice,
    seconds: float,
    hashprice: float,
    fleet_kw: float,
) -> None:
    hours = seconds / 3600.0
    mining_kw = sum(power_kw.values())
    totals.energy_mwh += mining_kw / 1000.0 * hours
    totals.cost_usd += mining_kw / 1000.0 * hours * price.price_usd_per_mwh
    totals.revenue_usd += revenue_usd_per_h(config, power_kw, hashprice) * hours
    if mining_kw <= 1e-6 and fleet_kw > 0:
        totals.curtailed_h += hours
    elif mining_kw < fleet_kw - 1e-6:
        totals.partial_h += hours


def baseline_kw(config: Config) -> dict[str, float]:
    """Always on: every pool at max_kw, most efficient first, under the firm-GPU envelope."""
    left_kw = room_kw(config)
    power: dict[str, float] = {}
    for pool in sorted(config.pools, key=lambda p: (p.efficiency_j_per_th, p.name)):
        power[pool.name] = min(pool.max_kw, left_kw)
        left_kw -= power[pool.name]
    return power


def room_kw(config: Config) -> float:
    """The firm-GPU envelope: POI limit minus the tenants' firm kW, aux and margin."""
    site = config.site
    firm_kw = sum(t.firm_kw for t in config.gpu_tenants)
    return max(0.0, site.poi_limit_kw - firm_kw - site.aux_kw - site.margin_kw)
