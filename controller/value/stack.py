"""The value stack: the replayed plan valued as energy, reserves and 4CP, strategy by strategy.

Strategies, each built on the one before it:
- always on: every pool at max_kw under the firm-GPU envelope; no reserves; 4CP paid.
- curtaild: the decide() replay of the backtest (energy-only curtailment).
- curtaild + reserves: each offered hour the awarded MW is held running whatever the price
  (what AWARD asks of the daemon): load the plan had cut is counted back on, ufr pools first for
  RRS, then the most efficient; its energy is paid at the hour's price and it mines. The award
  earns the DAM clearing price for every MW-hour. Every offer is awarded in full (the site is a
  price taker); deployments are not modelled: see README, "Value stack".
- ... + 4CP foresight: off in exactly the four official intervals (the limit of any rule).
- ... + 4CP causal: off in the hours the causal rule picks from ERCOT's load so far.
An hour off for 4CP forfeits its reserve award (the capacity payment is charged back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.backtest import BacktestResult, Interval, baseline_kw, revenue_usd_per_h, room_kw
from controller.config import Config
from controller.value.fourcp import CP_INTERVAL_S, CoincidentPeak, causal_off_hours
from controller.value.hours import HOUR_S, hour_of, local, month_key
from controller.value.ledger import Strategy
from controller.value.offers import Awards, award_schedule
from controller.value.reserve_prices import ReservePrices

Windows = dict[float, list[tuple[float, float]]]  # hour start -> [start, end) off windows in it
PoolKw = dict[str, float]


@dataclass
class StackInputs:
    reserves: ReservePrices | None = None
    peaks: dict[int, list[CoincidentPeak]] | None = None
    load: dict[float, float] | None = None  # ERCOT TOTAL MW by hour
    load_path: str = ""
    dam: dict[float, float] | None = None  # day-ahead $/MWh by hour: sizes `share` offers


@dataclass
class FourCpYear:
    """One year of a 4CP strategy against its base (the same strategy without 4CP action)."""

    peaks_valued: int = 0  # of the year's four intervals, those inside the replay
    caught: int = 0  # intervals with no mining load (off for 4CP, or on price)
    off_h: float = 0.0
    cost_usd: float = 0.0  # mining margin and reserve revenue given up to be off
    charge_usd: float = 0.0
    saving_usd: float = 0.0  # the base's charge minus this one's


@dataclass
class ValueStack:
    strategies: list[Strategy] = field(default_factory=list)
    fourcp: dict[str, dict[int, FourCpYear]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategies": [s.as_dict() for s in self.strategies],
            "fourcp": {
                name: {str(y): vars(v) for y, v in years.items()}
                for name, years in self.fourcp.items()
            },
            "notes": self.notes,
        }


def compute_stack(config: Config, result: BacktestResult, inputs: StackInputs) -> ValueStack:
    """Value the replay `result` under every strategy the inputs allow."""
    stack = ValueStack()
    names = [p.name for p in config.pools]
    series = result.series
    always = baseline_kw(config)

    def plan(row: Interval) -> PoolKw:
        return dict(zip(names, row.pool_kw, strict=True))

    peaks = _peaks_in(series, inputs.peaks, stack)
    charge = config.backtest.transmission_usd_per_kw_year if peaks else 0.0
    if peaks and charge == 0.0:
        stack.notes.append("4CP: transmission_usd_per_kw_year is 0 in [backtest]: no charge")
    run = _Runner(config, series, peaks, charge)
    stack.strategies.append(run.strategy("always on", lambda _row: always))
    base = run.strategy("curtaild", plan)
    stack.strategies.append(base)
    awards = award_schedule(config, series, inputs.reserves, inputs.dam, stack.notes)
    if awards is not None:
        base = run.strategy("curtaild + reserves", plan, awards)
        stack.strategies.append(base)
    if not peaks:
        return stack
    windows: Windows = {}
    for peak in peaks:
        windows.setdefault(hour_of(peak.start), []).append((peak.start, peak.start + CP_INTERVAL_S))
    stack.fourcp[base.name] = run.fourcp_years(base, base)  # no 4CP action: the reference
    foresight = run.strategy(f"{base.name} + 4CP foresight", plan, awards, windows)
    stack.strategies.append(foresight)
    stack.fourcp[foresight.name] = run.fourcp_years(base, foresight)
    if inputs.load is None:
        stack.notes.append("4CP causal rule: not run (no --load file)")
        return stack
    years = {p.year for p in peaks}
    bt = config.backtest
    hours = causal_off_hours(inputs.load, years, bt.fourcp_threshold, bt.fourcp_hours_ending,
                             inputs.load_path)  # fmt: skip
    causal_windows: Windows = {t: [(t, t + HOUR_S)] for t in hours}
    causal = run.strategy(f"{base.name} + 4CP causal", plan, awards, causal_windows)
    stack.strategies.append(causal)
    stack.fourcp[causal.name] = run.fourcp_years(base, causal)
    return stack


def _peaks_in(
    series: list[Interval], peaks: dict[int, list[CoincidentPeak]] | None, stack: ValueStack
) -> list[CoincidentPeak]:
    """The official intervals that fall inside the replay (their load is known)."""
    if peaks is None or not series:
        return []
    years = sorted({local(row.start).year for row in series})
    starts = {row.start: row for row in series}
    inside: list[CoincidentPeak] = []
    for year in years:
        listed = peaks.get(year, [])
        valued = [p for p in listed if _row_at(starts, p.start) is not None]
        inside += valued
        if len(valued) < 4:
            stack.notes.append(
                f"4CP {year}: {len(valued)} of the 4 intervals inside the prices valued "
                f"({len(listed)} listed in the file); the charge counts only those"
            )
    return inside


def _row_at(starts: dict[float, Interval], moment: float) -> Interval | None:
    for start in (hour_of(moment), moment - moment % 900.0, moment - moment % 300.0):
        row = starts.get(start)
        if row is not None and row.start <= moment < row.start + row.length_s:
            return row
    return None


class _Runner:
    """Walks the replay once per strategy."""

    def __init__(
        self, config: Config, series: list[Interval], peaks: list[CoincidentPeak], rate: float
    ) -> None:
        self.config = config
        self.series = series
        self.peaks = peaks
        self.rate = rate
        self.hashprice = config.economics.hashprice_usd_per_ph_day
        self.starts = {row.start: row for row in series}
        efficient = sorted(config.pools, key=lambda p: (p.efficiency_j_per_th, p.name))
        self.order = [p.name for p in efficient]
        self.ufr_order = [p.name for p in efficient if p.ufr] + [
            p.name for p in efficient if not p.ufr
        ]
        self.max_kw = {p.name: p.max_kw for p in config.pools}
        self.room_kw = room_kw(config)

    def strategy(
        self,
        name: str,
        kw_of: Callable[[Interval], PoolKw],
        awards: Awards | None = None,
        windows: Windows | None = None,
    ) -> Strategy:
        out = Strategy(name)
        cp_kw: dict[float, float] = {}  # interval start -> mining kW at a 4CP in it
        cp_at = {self._start_of(p.start): p for p in self.peaks}
        for k, row in enumerate(self.series):
            power = kw_of(row)
            award = awards.get(k) if awards else None
            if award is not None:
                power = self._floored(power, award[0], award[2])
            off = _off_share(row, windows)
            hours = row.length_s / HOUR_S
            on_h = hours * (1.0 - off)
            mining_kw = sum(power.values())
            month = out.month(month_key(row.start))
            month.hours += hours
            month.energy_mwh += mining_kw / 1000.0 * on_h
            month.energy_cost_usd += mining_kw / 1000.0 * on_h * row.price_usd_per_mwh
            month.mining_revenue_usd += revenue_usd_per_h(self.config, power, self.hashprice) * on_h
            if award is not None:
                month.reserve_mw_h += award[0] / 1000.0 * on_h
                month.reserve_revenue_usd += award[1] * (1.0 - off)
            month.curtailed_h += hours if mining_kw <= 1e-6 else hours * off
            month.fourcp_off_h += hours * off
            peak = cp_at.get(row.start)
            if peak is not None:
                cp_kw[row.start] = 0.0 if _inside(peak.start, windows) else mining_kw
        for peak in self.peaks:
            load_kw = cp_kw.get(self._start_of(peak.start), 0.0)
            out.peak_kw[peak.start] = load_kw
            out.month(month_key(peak.start)).fourcp_charge_usd += self.rate * load_kw / 4.0
        return out

    def fourcp_years(self, base: Strategy, acted: Strategy) -> dict[int, FourCpYear]:
        """`acted` against `base` year by year; an interval is caught when no mining ran in it
        (off for 4CP, or curtailed on price anyway)."""
        out: dict[int, FourCpYear] = {}
        for peak in self.peaks:
            year = out.setdefault(peak.year, FourCpYear())
            year.peaks_valued += 1
            year.caught += acted.peak_kw[peak.start] <= 1e-6
        base_years, acted_years = base.years(), acted.years()
        for year_number, year in out.items():
            b, a = base_years[str(year_number)], acted_years[str(year_number)]
            year.off_h = a.fourcp_off_h
            year.charge_usd = a.fourcp_charge_usd
            year.saving_usd = b.fourcp_charge_usd - a.fourcp_charge_usd
            year.cost_usd = (b.net_usd + b.fourcp_charge_usd) - (a.net_usd + a.fourcp_charge_usd)
        return out

    def _start_of(self, moment: float) -> float:
        row = _row_at(self.starts, moment)
        return row.start if row is not None else -1.0

    def _floored(self, power: PoolKw, floor_kw: float, rrs: bool) -> PoolKw:
        """The plan with at least `floor_kw` running: ufr pools first for RRS, then merit order."""
        missing = min(floor_kw, self.room_kw) - sum(power.values())
        if missing <= 1e-9:
            return power
        out = dict(power)
        for name in self.ufr_order if rrs else self.order:
            add = min(missing, self.max_kw[name] - out[name])
            if add > 0:
                out[name] += add
                missing -= add
            if missing <= 1e-9:
                break
        return out


def _off_share(row: Interval, windows: Windows | None) -> float:
    """The share of the interval inside off windows."""
    if not windows:
        return 0.0
    end = row.start + row.length_s
    overlap = sum(
        max(0.0, min(end, b) - max(row.start, a)) for a, b in windows.get(hour_of(row.start), ())
    )
    return min(1.0, overlap / row.length_s)


def _inside(moment: float, windows: Windows | None) -> bool:
    return bool(windows) and any(
        a <= moment < b for a, b in (windows or {}).get(hour_of(moment), ())
    )
