"""Backtest: the same decide() over a price history, against an always-on baseline.

The site is simulated as the daemon would see it: pools follow their targets exactly, GPU
tenants draw their firm reservation, the site meter reads GPU + mining + aux. Within each price
interval the controller ticks at `tick_s` until its plan settles (ramps, dwell timers), then
jumps to the next moment something can change, so a month of 15-minute prices takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.config import Config
from controller.core.decide import decide
from controller.core.plan import Decision, Snapshot
from controller.core.site import compile_site
from controller.core.state import ControllerState, initial_state
from controller.model import ActingPrice, PoolTelemetry, PriceRecord, Reading

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


@dataclass
class BacktestResult:
    controller: Totals
    baseline: Totals
    hours: float
    # (interval start epoch s, price $/MWh, mean mining kW) per price interval, for the chart
    series: list[tuple[float, float, float]] = field(default_factory=list)


def revenue_usd_per_h(config: Config, power_kw: dict[str, float], hashprice: float) -> float:
    """Mining revenue $/h: hashprice x PH/s x (1 - fee); 1 kW at 1 J/TH is 1 PH/s."""
    fee = config.economics.pool_fee
    per_day = sum(
        hashprice * (1.0 - fee) * power_kw.get(p.name, 0.0) / p.efficiency_j_per_th
        for p in config.pools
    )
    return per_day / 24.0


class _Site:
    """The simulated site the backtest controller runs against."""

    def __init__(self, config: Config, start_s: float) -> None:
        self.config = config
        self.site = compile_site(config)
        self.power_kw: dict[str, float] = {p.name: 0.0 for p in config.pools}
        self.seq: dict[str, int] = {p.name: 0 for p in config.pools}
        self.gpu_kw = {
            m: t.firm_kw / max(1, len(t.meters)) for t in config.gpu_tenants for m in t.meters
        }
        self.site_meter = next((m.name for m in config.meters if m.role == "site"), None)
        self.state: ControllerState = initial_state(start_s)

    def decide(self, price: ActingPrice, now: float) -> Decision:
        meters = {name: Reading(kw, now) for name, kw in self.gpu_kw.items()}
        if self.site_meter is not None:
            site_kw = sum(self.gpu_kw.values()) + sum(self.power_kw.values())
            meters[self.site_meter] = Reading(site_kw + self.config.site.aux_kw, now)
        pools = {
            name: PoolTelemetry(kw, None, True, self.seq[name], now)
            for name, kw in self.power_kw.items()
        }
        snap = Snapshot(price=price, meters_kw=meters, frequency_hz=Reading(60.0, now), pools=pools)
        decision = decide(snap, self.state, now, self.site)
        self.state = decision.next_state
        for name, ps in decision.plan.pools.items():
            self.power_kw[name] = ps.target_kw
            self.seq[name] = ps.seq
        return decision


def run_backtest(config: Config, records: list[PriceRecord]) -> BacktestResult:
    """Replay the records through decide(); the records must be sorted by time."""
    if not records:
        return BacktestResult(Totals(), Totals(), 0.0)
    hashprice = config.economics.hashprice_usd_per_ph_day
    tick_s = config.control.tick_s
    site = _Site(config, records[0].interval_start - tick_s)
    baseline_kw = _baseline_kw(config)
    controller, baseline = Totals(), Totals()
    series: list[tuple[float, float, float]] = []
    fleet_kw = sum(p.max_kw for p in config.pools)
    for record in records:
        length_s = INTERVAL_S[record.product]
        start = record.interval_start
        price = ActingPrice(record.price_usd_per_mwh, start, start, record.product)
        now, energy_kwh = start, 0.0
        while now < start + length_s:
            decision = site.decide(price, now)
            step_s = _next_step_s(decision, site.state, config, now, start + length_s, tick_s)
            _accumulate(controller, config, site.power_kw, price, step_s, hashprice, fleet_kw)
            energy_kwh += sum(site.power_kw.values()) * step_s / 3600.0
            now += step_s
        _accumulate(baseline, config, baseline_kw, price, length_s, hashprice, fleet_kw)
        series.append((start, record.price_usd_per_mwh, energy_kwh * 3600.0 / length_s))
    hours = sum(INTERVAL_S[r.product] for r in records) / 3600.0
    return BacktestResult(controller, baseline, hours, series)


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


def _baseline_kw(config: Config) -> dict[str, float]:
    """Always on: every pool at max_kw, most efficient first, under the firm-GPU envelope."""
    site = config.site
    firm_kw = sum(t.firm_kw for t in config.gpu_tenants)
    room_kw = max(0.0, site.poi_limit_kw - firm_kw - site.aux_kw - site.margin_kw)
    power: dict[str, float] = {}
    for pool in sorted(config.pools, key=lambda p: (p.efficiency_j_per_th, p.name)):
        power[pool.name] = min(pool.max_kw, room_kw)
        room_kw -= power[pool.name]
    return power
