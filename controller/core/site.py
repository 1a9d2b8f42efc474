"""The static shape of a site, compiled once per config for the hot path.

`decide()` runs on every event; everything that depends only on the config (breakeven factors,
merit order, outlet layout, tenant meters) is computed here once. The caller compiles at load
and at each reload and passes the `SiteModel` to `decide()`, which reads its settings from
`site.config`. What depends on the live hashprice (breakevens, and the merit order of a site
with strike pools) is computed when it is needed. Nothing here changes once compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

from controller.config import Config
from controller.drivers.kinds import pool_kind
from controller.model import PoolTelemetry

# Every named pool's telemetry in one C call (KeyError when one is missing).
ReportsOf = Callable[[Mapping[str, PoolTelemetry]], tuple[PoolTelemetry, ...]]

# A pool's telemetry within this share of its max_kw of a target counts as at the target
# (CONTRACT 2.4 "+ 2%"): 2% of capacity, so a target of 0 is confirmable by a real miner.
CONFIRM_TOLERANCE_FRACTION = 0.02


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """What never changes about a pool between config reloads."""

    name: str
    max_kw: float
    efficiency_j_per_th: float
    strike_usd_per_mwh: float
    # breakeven $/MWh = hashprice x factor (CONTRACT 7: hp x (1 - fee) x 1000 / (24 x J/TH))
    breakeven_factor: float
    ufr: bool
    has_pdus: bool
    tolerance_kw: float
    # outlet-switched kinds: cumulative nominal kW of the first k outlets, k = 0..n (fixed order)
    outlet_steps_kw: tuple[float, ...] | None
    # A pool whose agent reports on its own (mqtt): silent longer than this, it is unreachable.
    # Polled pools (PLC, outlets) are marked offline by their poller instead.
    stale_s: float | None

    def breakeven_usd_per_mwh(self, hashprice_usd_per_ph_day: float) -> float:
        if self.strike_usd_per_mwh > 0:
            return self.strike_usd_per_mwh
        return hashprice_usd_per_ph_day * self.breakeven_factor


@dataclass(frozen=True, slots=True)
class TenantSpec:
    name: str
    firm_kw: float
    meters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SiteModel:
    config: Config  # what it was compiled from: decide() reads its settings here
    pools: tuple[PoolSpec, ...]  # config order
    by_name: dict[str, PoolSpec]
    max_kw: dict[str, float]  # by pool name: what the plan's last check (clamp) needs
    tenants: tuple[TenantSpec, ...]
    site_meter: str | None
    # Without live hashprice every breakeven scales together, so merit order is fixed; strike
    # pools can reorder it, which `merit_order` handles.
    has_strike: bool
    static_merit: tuple[PoolSpec, ...]
    # The names and max_kw of `static_merit`, in its order: a plan in that order (the usual
    # case) is checked against the ratings without a lookup per pool (clamp.check_plan).
    static_names: tuple[str, ...]
    static_max_kw: tuple[float, ...]
    # For the steady check (memo.py): every pool's report, and those of the pools that report on
    # their own (stale after pool_stale_s), each fetched in one C call rather than a loop.
    # Derived from the fields above, and getters compare by identity: left out of equality.
    reports_of: ReportsOf = field(compare=False, repr=False)
    self_reports_of: ReportsOf = field(compare=False, repr=False)
    pool_stale_s: float = field(compare=False)

    def merit_order(self, hashprice_usd_per_ph_day: float) -> tuple[PoolSpec, ...]:
        """Most profitable (highest breakeven) first; least efficient is curtailed first."""
        if not self.has_strike:
            return self.static_merit
        return tuple(
            sorted(
                self.pools,
                key=lambda p: (-p.breakeven_usd_per_mwh(hashprice_usd_per_ph_day), p.name),
            )
        )


def compile_site(config: Config) -> SiteModel:
    """The SiteModel of a config: built at load and at each reload, never per decision."""
    return _build(config)


def _build(config: Config) -> SiteModel:
    fee = config.economics.pool_fee
    pdus = {p.name: p for p in config.pdus}
    pools = []
    for pool in config.pools:
        kind = pool_kind(pool.driver)
        steps: tuple[float, ...] | None = None
        if kind.switches_outlets:
            outlets = [pdus[n].outlet_kw for n in pool.pdus for _ in range(pdus[n].outlets)]
            steps = (0.0, *accumulate(outlets))
        pools.append(
            PoolSpec(
                name=pool.name,
                max_kw=pool.max_kw,
                efficiency_j_per_th=pool.efficiency_j_per_th,
                strike_usd_per_mwh=pool.strike_usd_per_mwh,
                breakeven_factor=(1.0 - fee) * 1000.0 / (24.0 * pool.efficiency_j_per_th),
                ufr=pool.ufr,
                has_pdus=bool(pool.pdus),
                tolerance_kw=CONFIRM_TOLERANCE_FRACTION * pool.max_kw,
                outlet_steps_kw=steps,
                stale_s=config.control.pool_stale_s if kind.reports_itself else None,
            )
        )
    hp = config.economics.hashprice_usd_per_ph_day
    static = tuple(sorted(pools, key=lambda p: (-p.breakeven_usd_per_mwh(hp), p.name)))
    site_meters = [m.name for m in config.meters if m.role == "site"]
    return SiteModel(
        config=config,
        pools=tuple(pools),
        by_name={p.name: p for p in pools},
        max_kw={p.name: p.max_kw for p in pools},
        tenants=tuple(TenantSpec(t.name, t.firm_kw, tuple(t.meters)) for t in config.gpu_tenants),
        site_meter=site_meters[0] if site_meters else None,
        has_strike=any(p.strike_usd_per_mwh > 0 for p in pools),
        static_merit=static,
        static_names=tuple(p.name for p in static),
        static_max_kw=tuple(p.max_kw for p in static),
        reports_of=_reports_of(tuple(p.name for p in pools)),
        self_reports_of=_reports_of(tuple(p.name for p in pools if p.stale_s is not None)),
        pool_stale_s=config.control.pool_stale_s,
    )


def _reports_of(names: tuple[str, ...]) -> ReportsOf:
    """A getter of these pools' telemetry, always a tuple (itemgetter of one name is not)."""
    if len(names) == 1:
        name = names[0]
        return lambda reports: (reports[name],)
    if not names:
        return lambda reports: ()
    getter: ReportsOf = itemgetter(*names)
    return getter
